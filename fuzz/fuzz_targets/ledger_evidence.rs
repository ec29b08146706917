//! What an auditor feeds `treaty ledger verify` and `treaty receipt
//! verify`: signed notes and checkpoints, verifier keys, signature
//! lines, receipts, inclusion proofs and ledger records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treaty_ledger::note::{Checkpoint, Note, SignatureLine, VerifierKey};
use treaty_ledger::{Entry, InclusionProof, Kind, Receipt};

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let key = VerifierKey::parse("localhost/treaty-ledger+7706df01+AZqhBhHxbm7fa3ViYL8Zj0wWcOwhDx36LBe5h40KdMNI").ok();
    match which % 7 {
        0 => drop(Note::parse(text)),
        1 => drop(Checkpoint::parse(text)),
        2 => drop(VerifierKey::parse(text)),
        3 => drop(SignatureLine::parse(text)),
        4 => drop(Receipt::verify(text, key.as_slice())),
        5 => {
            if let Ok(proof) = serde_json::from_str::<InclusionProof>(text) {
                let _ = proof.verify(key.as_slice(), &[]);
            }
        }
        _ => {
            for kind in [Kind::Decision, Kind::Outcome, Kind::Key, Kind::Admin] {
                let _ = Entry::decode(kind, text);
            }
        }
    }
});
