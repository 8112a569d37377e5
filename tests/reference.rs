//! A brute-force reference of CONTRACT sections 3 and 4, written independently of the engine:
//! plain loops over every event, serde_json::Value for parsing, sorting for percentiles.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A window shape, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub enum RefWindow {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

/// An aggregation for the reference.
#[derive(Clone, Debug)]
pub struct RefAggregation {
    pub name: String,
    pub window: RefWindow,
    pub group_by: String,
}

#[derive(Clone, Debug)]
struct RefEvent {
    ts: i64,
    event_type: String,
    user: Option<String>,
    session: Option<String>,
    latency: Option<f64>,
    value: Option<f64>,
    error: bool,
}

/// The expected statistics of one window.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    pub count: u64,
    pub errors: u64,
    pub users: BTreeSet<String>,
    pub latencies: Vec<f64>,
    pub values: Vec<f64>,
}

/// Everything the reference expects from a run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// (aggregation, window_start, window_end, key) → statistics.
    pub windows: BTreeMap<(String, i64, i64, String), Expected>,
    /// aggregation → number of late dead letters.
    pub late: BTreeMap<String, u64>,
    /// Invalid inputs.
    pub invalid: u64,
}

fn parse(line: &[u8]) -> Option<RefEvent> {
    let text = std::str::from_utf8(line).ok()?;
    let v: Value = serde_json::from_str(text).ok()?;
    let o = v.as_object()?;
    let event_type = o.get("event_type")?.as_str()?.to_owned();
    let ts = match o.get("timestamp")? {
        Value::Number(n) => n.as_u64()? as i64,
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok()?.timestamp_millis(),
        _ => return None,
    };
    let opt_str = |k: &str| -> Option<Option<String>> {
        match o.get(k) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            _ => None,
        }
    };
    let opt_num = |k: &str| -> Option<Option<f64>> {
        match o.get(k) {
            None | Some(Value::Null) => Some(None),
            Some(Value::Number(n)) => Some(Some(n.as_f64()?)),
            _ => None,
        }
    };
    let latency = opt_num("latency_ms")?;
    if latency.is_some_and(|l| l < 0.0) {
        return None;
    }
    let value = opt_num("value")?;
    // CONTRACT 2 and the README: values beyond ±1e15, times after 9999 and empty names are invalid.
    let too_long = latency.is_some_and(|l| l > 1e12);
    if too_long || [latency, value].iter().flatten().any(|v| v.abs() > 1e15) || ts > 253_402_300_799_999 {
        return None;
    }
    let (user, session) = (opt_str("user_id")?, opt_str("session_id")?);
    if event_type.is_empty() || user.as_deref() == Some("") || session.as_deref() == Some("") {
        return None;
    }
    let status = opt_str("status")?;
    Some(RefEvent { ts, event_type, user, session, latency, value, error: status.as_deref() == Some("error") })
}

fn key_of(e: &RefEvent, group_by: &str) -> Option<String> {
    match group_by {
        "event_type" => Some(e.event_type.clone()),
        "user_id" => e.user.clone(),
        "session_id" => e.session.clone(),
        _ => Some("*".to_owned()),
    }
}

fn add(x: &mut Expected, e: &RefEvent) {
    x.count += 1;
    if e.error {
        x.errors += 1;
    }
    if let Some(u) = &e.user {
        x.users.insert(u.clone());
    }
    if let Some(l) = e.latency {
        x.latencies.push(l);
    }
    if let Some(v) = e.value {
        x.values.push(v);
    }
}

/// Runs the reference over partitions of lines, each in the order it is read.
pub fn compute(partitions: &[Vec<Vec<u8>>], aggregations: &[RefAggregation], max_out_of_orderness: i64) -> Outcome {
    let mut outcome = Outcome::default();
    // Session aggregations: the on-time events per (aggregation, key).
    let mut session_events: HashMap<(String, String), Vec<RefEvent>> = HashMap::new();
    for lines in partitions {
        let mut max_ts: Option<i64> = None;
        for line in lines {
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let Some(e) = parse(line) else {
                outcome.invalid += 1;
                continue;
            };
            let watermark = max_ts.map_or(i64::MIN, |m| m - max_out_of_orderness).max(0);
            for a in aggregations {
                let Some(key) = key_of(&e, &a.group_by) else { continue };
                let mut late = false;
                match a.window {
                    RefWindow::Tumbling(size) | RefWindow::Sliding(size, _) => {
                        let slide = match a.window {
                            RefWindow::Sliding(_, slide) => slide,
                            _ => size,
                        };
                        // Every k with k*slide <= ts < k*slide + size.
                        let mut k = e.ts.div_euclid(slide);
                        while k * slide + size > e.ts {
                            let (start, end) = (k * slide, k * slide + size);
                            if end <= watermark {
                                late = true;
                            } else {
                                add(outcome.windows.entry((a.name.clone(), start, end, key.clone())).or_default(), &e);
                            }
                            k -= 1;
                        }
                    }
                    RefWindow::Session(_) => {
                        if e.ts < watermark {
                            late = true;
                        } else {
                            session_events.entry((a.name.clone(), key.clone())).or_default().push(e.clone());
                        }
                    }
                }
                if late {
                    *outcome.late.entry(a.name.clone()).or_default() += 1;
                }
            }
            max_ts = Some(max_ts.map_or(e.ts, |m| m.max(e.ts)));
        }
    }
    for a in aggregations {
        let RefWindow::Session(gap) = a.window else { continue };
        for ((name, key), events) in session_events.iter_mut() {
            if *name != a.name {
                continue;
            }
            events.sort_by_key(|e| e.ts);
            let mut i = 0;
            while i < events.len() {
                let mut j = i;
                while j + 1 < events.len() && events[j + 1].ts - events[j].ts < gap {
                    j += 1;
                }
                let mut x = Expected::default();
                for e in &events[i..=j] {
                    add(&mut x, e);
                }
                outcome.windows.insert((name.clone(), events[i].ts, events[j].ts + gap, key.clone()), x);
                i = j + 1;
            }
        }
    }
    outcome
}

/// The exact nearest-rank percentile.
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len() as f64;
    let rank = ((p / 100.0) * n - 1e-9).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

/// The exactly rounded sum of floats (Shewchuk's algorithm, as Python's `math.fsum`): partial
/// sums kept as non-overlapping floats, so cancellation loses nothing.
pub fn exact_sum(values: &[f64]) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for &v in values {
        let mut x = v;
        let mut kept = 0;
        for i in 0..partials.len() {
            let mut y = partials[i];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    // Round the partials, largest first, to the nearest float (half-even across partials).
    let Some(mut hi) = partials.pop() else { return 0.0 };
    let mut lo = 0.0;
    while let Some(y) = partials.pop() {
        let x = hi;
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if let Some(&next) = partials.last()
        && ((lo < 0.0 && next < 0.0) || (lo > 0.0 && next > 0.0))
    {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * a.abs().max(b.abs()).max(1e-300)
}

/// Compares engine metrics records (JSON lines) with the reference; returns every difference.
pub fn compare(records: &[Value], expected: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for r in records {
        let id = (
            r["aggregation"].as_str().unwrap_or_default().to_owned(),
            r["window_start"].as_i64().unwrap_or_default(),
            r["window_end"].as_i64().unwrap_or_default(),
            r["key"].as_str().unwrap_or_default().to_owned(),
        );
        if !seen.insert(id.clone()) {
            problems.push(format!("{id:?}: emitted twice"));
            continue;
        }
        let Some(x) = expected.windows.get(&id) else {
            problems.push(format!("{id:?}: not expected"));
            continue;
        };
        let mut check = |what: &str, ok: bool, got: &Value, want: String| {
            if !ok {
                problems.push(format!("{id:?} {what}: got {got}, want {want}"));
            }
        };
        check("count", r["count"].as_u64() == Some(x.count), &r["count"], x.count.to_string());
        check("error_count", r["error_count"].as_u64() == Some(x.errors), &r["error_count"], x.errors.to_string());
        let rate = 100.0 * x.errors as f64 / x.count as f64;
        check(
            "error_rate",
            close(r["error_rate"].as_f64().unwrap_or(-1.0), rate, 1e-9),
            &r["error_rate"],
            rate.to_string(),
        );
        check(
            "unique_users",
            r["unique_users"].as_u64() == Some(x.users.len() as u64),
            &r["unique_users"],
            x.users.len().to_string(),
        );
        let mut lat = x.latencies.clone();
        lat.sort_by(f64::total_cmp);
        let l = &r["latency_ms"];
        check("latency.count", l["count"].as_u64() == Some(lat.len() as u64), &l["count"], lat.len().to_string());
        if lat.is_empty() {
            check("latency.p99", l["p99"].is_null(), &l["p99"], "null".into());
        } else {
            check("latency.min", l["min"].as_f64() == Some(lat[0]), &l["min"], lat[0].to_string());
            check(
                "latency.max",
                l["max"].as_f64() == Some(lat[lat.len() - 1]),
                &l["max"],
                lat[lat.len() - 1].to_string(),
            );
            let mean = exact_sum(&lat) / lat.len() as f64;
            check("latency.mean", close(l["mean"].as_f64().unwrap_or(-1.0), mean, 1e-9), &l["mean"], mean.to_string());
            for p in [50.0, 90.0, 95.0, 99.0] {
                let exact = nearest_rank(&lat, p);
                let name = format!("p{p}");
                let got = l[name.as_str()].as_f64().unwrap_or(-1.0);
                check(&format!("latency.{name}"), close(got, exact, 0.01), &l[name.as_str()], exact.to_string());
            }
        }
        let v = &r["value"];
        check(
            "value.count",
            v["count"].as_u64() == Some(x.values.len() as u64),
            &v["count"],
            x.values.len().to_string(),
        );
        if !x.values.is_empty() {
            let sum = exact_sum(&x.values);
            let min = x.values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = x.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            check("value.sum", close(v["sum"].as_f64().unwrap_or(f64::NAN), sum, 1e-9), &v["sum"], sum.to_string());
            let mean = sum / x.values.len() as f64;
            check(
                "value.mean",
                close(v["mean"].as_f64().unwrap_or(f64::NAN), mean, 1e-9),
                &v["mean"],
                mean.to_string(),
            );
            check("value.min", v["min"].as_f64() == Some(min), &v["min"], min.to_string());
            check("value.max", v["max"].as_f64() == Some(max), &v["max"], max.to_string());
        }
    }
    for id in expected.windows.keys() {
        if !seen.contains(id) {
            problems.push(format!("{id:?}: missing"));
        }
    }
    problems
}
