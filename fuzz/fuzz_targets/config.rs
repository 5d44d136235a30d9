//! Config loader: any text gives a config or positioned errors, never a panic; a config
//! loaded for the control plane survives the trip over the wire unchanged.
#![no_main]
#![forbid(unsafe_code)]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use tollgate_shared::config::{Config, LoadMode, Snapshot, load_str_with};
use tollgate_shared::proto::v1 as pb;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A fixed fake environment: expansion works, and unset names become errors.
    let env: HashMap<String, String> = [
        ("OPENAI_API_KEY", "sk-fuzz"),
        ("ANTHROPIC_API_KEY", "sk-ant-fuzz"),
        ("PORT", "3000"),
        ("EMPTY", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for mode in [LoadMode::ExpandAll, LoadMode::DeferSecrets] {
        match load_str_with(text, "fuzz.yaml", &env, mode) {
            Ok(config) if mode == LoadMode::DeferSecrets => {
                let mut back = Config::try_from(pb::Config::from(&config))
                    .expect("the proxy accepts what the control plane sends");
                assert_eq!(back, config, "the wire changed the config");
                let _ = back.resolve_secrets(&env);
                let _ = Snapshot::new(back);
            }
            Ok(config) => {
                let _ = Snapshot::new(config);
            }
            Err(errors) => {
                assert!(!errors.0.is_empty(), "a failed load reports an error");
                let _ = errors.to_string();
            }
        }
    }
});
