//! A deterministic fuzz loop: odd strings never panic the parsers, and what parses prints back to an equal selector.

use gantry_api::fields::FieldSelector;
use gantry_api::labels::Selector;
use gantry_api::validation;

const PIECES: &[&str] = &[
    "a", "b", "x", "1", "-", "_", ".", "/", "=", "==", "!", "!=", "(", ")", ",", " ", "\t", "\n",
    "\\", "in", "notin", ">", "<", "\0", "é", "日", "A", "9", "%", "||",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn odd_inputs_never_panic_and_round_trip() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut labels_ok, mut fields_ok) = (0, 0);
    for _ in 0..30_000 {
        let len = rng.below(16);
        let input: String = (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect();

        if let Ok(sel) = Selector::parse(&input) {
            labels_ok += 1;
            let printed = sel.to_string();
            let again = Selector::parse(&printed)
                .unwrap_or_else(|e| panic!("{input:?} -> {printed:?}: {e}"));
            assert_eq!(again, sel, "{input:?} -> {printed:?}");
        }

        if let Ok(sel) = FieldSelector::parse(&input) {
            fields_ok += 1;
            let printed = sel.to_string();
            let again = FieldSelector::parse(&printed)
                .unwrap_or_else(|e| panic!("{input:?} -> {printed:?}: {e}"));
            let canon = |s: &FieldSelector| {
                let mut v: Vec<String> = s.requirements().iter().map(ToString::to_string).collect();
                v.sort();
                v
            };
            assert_eq!(canon(&again), canon(&sel), "{input:?} -> {printed:?}");
        }

        for check in [
            validation::is_dns1123_label,
            validation::is_dns1123_subdomain,
            validation::is_dns1035_label,
            validation::is_qualified_name,
            validation::is_valid_label_value,
            validation::is_valid_path_segment_name,
        ] {
            let _ = check(&input);
        }
        let name = validation::generate_name(&input);
        assert!(name.len() <= input.len().min(58) + 5);
    }
    // The generator must reach the interesting paths, not only errors.
    assert!(
        labels_ok > 1_000 && fields_ok > 1_000,
        "labels {labels_ok}, fields {fields_ok}"
    );
}
