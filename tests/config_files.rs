//! Every example config in `config/` parses and validates, so an example can never rot.

#[test]
fn every_example_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(errors) = rtsa::config::load_str(&text, Vec::new()) {
            panic!("{}:\n{errors}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} configs in {}", dir.display());
}
