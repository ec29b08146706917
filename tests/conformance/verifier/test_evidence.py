"""An independent verifier of Treaty's evidence, in Python, sharing no code
with Treaty: it checks a C2SP signed-note checkpoint, recomputes the
RFC 9162 Merkle root from an inclusion proof, and checks a placement
receipt's Ed25519 signature, with the `cryptography` package only.

It runs after the conformance suites against the demo gateway's ledger
(TREATY_DEMO_DIR, the demo's directory, after the gateway stopped and
signed its last checkpoint), driving the `treaty` binary (TREATY_BIN) only
to fetch the public key, an inclusion proof and a receipt.
"""

import base64
import hashlib
import json
import os
import struct
import subprocess

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

BIN = os.environ.get("TREATY_BIN", "target/debug/treaty")
DEMO = os.environ.get("TREATY_DEMO_DIR")
EM_DASH = "\u2014"
KINDS = {"decision": 1, "outcome": 2, "key": 3, "admin": 4}

pytestmark = pytest.mark.skipif(not DEMO, reason="TREATY_DEMO_DIR is not set")


def treaty(*args, check=True):
    config = os.path.join(DEMO, "treaty.toml")
    out = subprocess.run(
        [BIN, "--log", "error", *args, "--config", config],
        capture_output=True,
        text=True,
        check=False,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"treaty {' '.join(args)} failed: {out.stderr}")
    return out


# --- C2SP signed note -------------------------------------------------------


def parse_vkey(vkey):
    name, key_id, data = vkey.strip().split("+", 2)
    raw = base64.b64decode(data)
    assert raw[0] == 0x01, "an Ed25519 note key"
    key = raw[1:]
    expected = hashlib.sha256(name.encode() + b"\n" + b"\x01" + key).digest()[:4]
    assert expected.hex() == key_id, "the key id is SHA-256(name, newline, type, key)[:4]"
    return name, expected, key


def open_note(note, vkey):
    """Returns the note's text if `vkey` signed it."""
    name, key_id, key = parse_vkey(vkey)
    assert note.endswith("\n")
    body = note[:-1]
    split = body.rindex("\n\n")
    text, sigs = body[: split + 1], body[split + 2 :].split("\n")
    verified = False
    for line in sigs:
        assert line.startswith(EM_DASH + " ")
        signer, sig = line[2:].split(" ", 1)
        raw = base64.b64decode(sig)
        if signer != name or raw[:4] != key_id:
            continue  # another key (a witness, a retired key): ignored
        Ed25519PublicKey.from_public_bytes(key).verify(raw[4:], text.encode())
        verified = True
    assert verified, "no signature by the log's key"
    return text


def parse_checkpoint(text):
    origin, size, root = text.split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


# --- RFC 9162 ---------------------------------------------------------------


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index, size, leaf, path):
    """RFC 9162 section 2.1.3.2, step by step."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def record_leaf(seq, kind, record):
    return hashlib.sha256(
        b"\x00" + struct.pack(">Q", seq) + bytes([KINDS[kind]]) + record.encode()
    ).digest()


def check_proof(proof, vkey):
    text = open_note(proof["checkpoint"], vkey)
    origin, size, root = parse_checkpoint(text)
    assert size == proof["tree_size"]
    leaf = record_leaf(proof["seq"], proof["kind"], proof["record"])
    assert base64.b64encode(leaf).decode() == proof["leaf_hash"]
    path = [base64.b64decode(h) for h in proof["hashes"]]
    assert root_from_inclusion(proof["seq"] - 1, size, leaf, path) == root, (
        "the audit path does not lead to the signed root"
    )
    return origin, size


# --- receipts ---------------------------------------------------------------


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_receipt(wire, vkey):
    name, key_id, key = parse_vkey(vkey)
    body, sig = wire.strip().split(".")
    raw = b64url(body)
    receipt = json.loads(raw)
    assert receipt["key"] == f"{name}+{key_id.hex()}"
    Ed25519PublicKey.from_public_bytes(key).verify(
        b64url(sig), b"treaty-receipt/v1\n" + raw
    )
    return receipt


# --- the test -----------------------------------------------------------------


@pytest.fixture(scope="module")
def evidence():
    vkey = treaty("ledger", "pubkey").stdout.strip()
    lines = treaty("ledger", "export").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    served = {
        r["record"]["request_id"]
        for r in records
        if r["kind"] == "outcome" and r["record"].get("served_by")
    }
    decision = next(
        r["record"]
        for r in records
        if r["kind"] == "decision" and r["record"]["request_id"] in served
    )
    rid, tenant = decision["request_id"], decision["tenant"]
    proof = json.loads(treaty("ledger", "proof", rid, "--tenant", tenant).stdout)
    wire = treaty("receipt", "issue", rid).stdout.strip()
    return vkey, decision, proof, wire


def test_the_checkpoint_and_the_inclusion_proof_verify(evidence):
    vkey, decision, proof, _ = evidence
    origin, size = check_proof(proof, vkey)
    assert origin == parse_vkey(vkey)[0]
    assert proof["seq"] <= size
    assert json.loads(proof["record"])["request_id"] == decision["request_id"]


def test_the_receipt_verifies_and_matches_the_proof(evidence):
    vkey, decision, proof, wire = evidence
    receipt = check_receipt(wire, vkey)
    assert receipt["request_id"] == decision["request_id"]
    assert receipt["tenant"] == decision["tenant"]
    assert receipt["seq"] == proof["seq"]
    assert receipt["leaf_hash"] == proof["leaf_hash"]
    assert receipt["host"], "a served request's receipt names its host"


def test_an_altered_receipt_fails(evidence):
    vkey, _, _, wire = evidence
    body, sig = wire.split(".")
    receipt = json.loads(b64url(body))
    receipt["host"] = "somewhere-else"
    forged = (
        base64.urlsafe_b64encode(json.dumps(receipt, separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
        + "."
        + sig
    )
    with pytest.raises(InvalidSignature):
        check_receipt(forged, vkey)


def test_an_altered_proof_fails(evidence):
    vkey, _, proof, _ = evidence
    bad = dict(proof)
    bad["record"] = proof["record"].replace(json.loads(proof["record"])["tenant"], "x", 1)
    with pytest.raises(AssertionError):
        check_proof(bad, vkey)
    if proof["hashes"]:
        bad = dict(proof)
        h = bytearray(base64.b64decode(proof["hashes"][0]))
        h[0] ^= 1
        bad["hashes"] = [base64.b64encode(bytes(h)).decode()] + proof["hashes"][1:]
        with pytest.raises(AssertionError):
            check_proof(bad, vkey)


def test_another_tenant_gets_no_proof(evidence):
    _, decision, _, _ = evidence
    out = treaty(
        "ledger", "proof", decision["request_id"], "--tenant", "not-" + decision["tenant"],
        check=False,
    )
    assert out.returncode == 1
    assert out.stdout == ""
