#!/usr/bin/env python3
"""Independent check of the ov vault vectors, versions 1 and 2 (see ../SPEC.md).

Re-derives every value of vectors.json and opens vault.json (version 1) and
vault-v2.json (version 2, table_mac included), and the export of web,
vault-v2-export-web.json, from the spec alone, with Python's standard library and the `cryptography` package
(Argon2id, ChaCha20-Poly1305); HChaCha20 is written out below from
draft-irtf-cfrg-xchacha-03 section 2.2. It shares no code with the Go package.

    python3 vault/testdata/crosscheck.py
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from cryptography.exceptions import InvalidTag

HERE = os.path.dirname(os.path.abspath(__file__))
SECTION_FORMAT = 1  # u32 in value_aad and mac_input, in versions 1 and 2


def hkdf_sha256(secret, info, length=32):
    prk = hmac.new(b"\x00" * 32, secret, hashlib.sha256).digest()  # empty salt
    out, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info.encode() + bytes([i]), hashlib.sha256).digest()
        out += block
    return out[:length]


def hmac256(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def lp(b):
    return struct.pack(">I", len(b)) + b


def u32(n):
    return struct.pack(">I", n)


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def hchacha20(key, nonce16):
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xseal(key, nonce, pt, aad):
    sub = hchacha20(key, nonce[:16])
    return nonce + ChaCha20Poly1305(sub).encrypt(b"\x00" * 4 + nonce[16:], pt, aad)


def xopen(key, sealed, aad):
    nonce, ct = sealed[:24], sealed[24:]
    sub = hchacha20(key, nonce[:16])
    return ChaCha20Poly1305(sub).decrypt(b"\x00" * 4 + nonce[16:], ct, aad)


def app_key(root, app, epoch):
    return hkdf_sha256(root, "ov/v1/app/%s/%d" % (app, epoch))


def subkeys(ak):
    return (hkdf_sha256(ak, "ov/v1/value-key"), hkdf_sha256(ak, "ov/v1/mac-key"),
            hkdf_sha256(ak, "ov/v1/check-key"))


def check(check_key, app, epoch):
    return hmac256(check_key, ("ov/v1/check/%s/%d" % (app, epoch)).encode())


def root_check(root):
    return hmac256(hkdf_sha256(root, "ov/v1/root-check-key"), b"ov/v1/root-check")


def value_aad(app, epoch, name):
    return lp(b"ov/v1/value") + u32(SECTION_FORMAT) + lp(app.encode()) + u32(epoch) + lp(name.encode())


def mac_input(app, epoch, entries):
    b = lp(b"ov/v1/entries") + u32(SECTION_FORMAT) + lp(app.encode()) + u32(epoch) + u32(len(entries))
    for name in sorted(entries, key=lambda n: n.encode()):
        b += lp(name.encode()) + lp(entries[name])
    return b


def root_aad(version, t, m, p, salt):
    return (lp(b"ov/v1/root-wrap") + u32(version) + lp(b"argon2id") + u32(t) + u32(m) + u32(p)
            + lp(salt))


def table_key(root):
    return hkdf_sha256(root, "ov/v2/table-key")


def table_input(generation, apps, label=b"ov/v2/table"):
    """generation: the vault's; apps: name -> (epoch, check, mac, deployments, retired), raw bytes;
    deployments: name -> (generation, created, rotated, check, grant); retired: [(deployment,
    generation, check, date, reason)], oldest first. label b"ov/v2/export" gives export_input."""
    b = lp(label) + u32(2) + u32(generation) + u32(len(apps))
    for name in sorted(apps, key=lambda n: n.encode()):
        epoch, chk, mac, deps, retired = apps[name]
        b += lp(name.encode()) + u32(epoch) + lp(chk) + lp(mac) + u32(len(deps))
        for dep in sorted(deps, key=lambda n: n.encode()):
            gen, created, rotated, dchk, grant = deps[dep]
            b += lp(dep.encode()) + u32(gen) + lp(created.encode()) + lp(rotated.encode()) + lp(dchk) + lp(grant)
        b += u32(len(retired))
        for dep, gen, rchk, date, reason in retired:
            b += lp(dep.encode()) + u32(gen) + lp(rchk) + lp(date.encode()) + lp(reason.encode())
    return b


def deployment_key(root, app, dep, gen):
    return hkdf_sha256(root, "ov/v2/deployment/%s/%s/%d" % (app, dep, gen))


def grant_check(dk, app, dep, gen):
    return hmac256(hkdf_sha256(dk, "ov/v2/grant-check-key"), ("ov/v2/grant-check/%s/%s/%d" % (app, dep, gen)).encode())


def grant_aad(app, dep, gen, epoch, mac):
    return lp(b"ov/v2/grant") + u32(2) + lp(app.encode()) + lp(dep.encode()) + u32(gen) + u32(epoch) + lp(mac)


def argon2id(password, salt, t, m, p):
    return Argon2id(salt=salt, length=32, iterations=t, lanes=p, memory_cost=m).derive(password)


def main():
    with open(os.path.join(HERE, "vectors.json")) as f:
        vs = json.load(f)
    h = bytes.fromhex
    n = 0

    def eq(what, got, want):
        nonlocal n
        n += 1
        if got != want:
            sys.exit("MISMATCH %s:\n got  %s\n want %s" % (what, got.hex(), want.hex()))

    for v in vs["root_check"]:
        eq("root_check", root_check(h(v["root"])), h(v["root_check"]))
    for v in vs["derive"]:
        ak = app_key(h(v["root"]), v["app"], v["epoch"])
        vk, mk, ck = subkeys(ak)
        eq("app_key", ak, h(v["app_key"]))
        eq("value_key", vk, h(v["value_key"]))
        eq("mac_key", mk, h(v["mac_key"]))
        eq("check_key", ck, h(v["check_key"]))
        eq("check", check(ck, v["app"], v["epoch"]), h(v["check"]))
    for v in vs["seal"]:
        aad = value_aad(v["app"], v["epoch"], v["name"])
        eq("value aad", aad, h(v["aad"]))
        eq("sealed", xseal(h(v["value_key"]), h(v["nonce"]), v["plaintext"].encode(), aad), h(v["sealed"]))
    for v in vs["mac"]:
        entries = {e["name"]: h(e["sealed"]) for e in v["entries"]}
        inp = mac_input(v["app"], v["epoch"], entries)
        eq("mac input", inp, h(v["input"]))
        eq("mac", hmac256(h(v["mac_key"]), inp), h(v["mac"]))
    for v in vs["wrap"] + vs["wrap_v2"]:
        version = v.get("version", 1)
        kek = argon2id(v["password"].encode(), h(v["salt"]), v["time"], v["memory_kib"], v["threads"])
        eq("kek", kek, h(v["kek"]))
        aad = root_aad(version, v["time"], v["memory_kib"], v["threads"], h(v["salt"]))
        eq("root aad v%d" % version, aad, h(v["aad"]))
        eq("wrapped v%d" % version, xseal(kek, h(v["nonce"]), h(v["root"]), aad), h(v["wrapped"]))
    assert {v.get("version", 1) for v in vs["wrap"]} == {1}
    assert {v["version"] for v in vs["wrap_v2"]} == {2}
    for v in vs["table"]:
        tk = table_key(h(v["root"]))
        eq("table key", tk, h(v["table_key"]))
        assert 1 <= v["generation"] <= 0xFFFFFFFF, v["generation"]
        inp = table_input(v["generation"], {a["app"]: (
            a["epoch"], h(a["check"]), h(a["mac"]),
            {d["deployment"]: (d["generation"], d["created"], d["rotated"], h(d["check"]), h(d["grant"])) for d in a["deployments"]},
            [(r["deployment"], r["generation"], h(r["check"]), r["retired"], r["reason"]) for r in a["retired"]],
        ) for a in v["apps"]})
        eq("table input", inp, h(v["input"]))
        eq("table_mac", hmac256(tk, inp), h(v["table_mac"]))
    assert len(vs["table"]) == 2 and vs["table"][0]["apps"] == [] and vs["table"][0]["generation"] == 1
    for v in vs["deployment"]:
        dk = deployment_key(h(v["root"]), v["app"], v["deployment"], v["generation"])
        eq("deployment key", dk, h(v["deployment_key"]))
        eq("grant check key", hkdf_sha256(dk, "ov/v2/grant-check-key"), h(v["grant_check_key"]))
        eq("grant check", grant_check(dk, v["app"], v["deployment"], v["generation"]), h(v["grant_check"]))
        eq("grant wrap key", hkdf_sha256(dk, "ov/v2/grant-wrap-key"), h(v["grant_wrap_key"]))
    assert len(vs["deployment"]) >= 3 and len(vs["grant"]) >= 2
    for v in vs["grant"]:
        aad = grant_aad(v["app"], v["deployment"], v["generation"], v["epoch"], h(v["mac"]))
        eq("grant aad", aad, h(v["aad"]))
        wk = hkdf_sha256(h(v["deployment_key"]), "ov/v2/grant-wrap-key")
        eq("grant", xseal(wk, h(v["nonce"]), h(v["app_key"]), aad), h(v["grant"]))

    for key, version in (("golden", 1), ("golden_v2", 2)):
        n += open_golden(vs[key], version, eq)
    n += open_export(vs["export"], vs["golden_v2"], eq)
    print("ok: %d values match" % n)


def table_entry(sec):
    """An app section of the file as table_input takes it."""
    b64 = base64.b64decode
    deps = {dep: (d["generation"], d["created"], d["rotated"], b64(d["check"]), b64(d["grant"]))
            for dep, d in sec["deployments"].items()}
    retired = [(r["deployment"], r["generation"], b64(r["check"]), r["retired"], r["reason"]) for r in sec["retired"]]
    return (sec["epoch"], b64(sec["check"]), b64(sec["mac"]), deps, retired)


def open_export(e, g, eq):
    """SPEC.md section 4, "Exports": the export of one app of the golden version-2 file
    holds that app's section unchanged, no password-wrapped root key, and a table_mac
    over export_input; it opens with the app's deployment key."""
    h = bytes.fromhex
    b64 = base64.b64decode
    with open(os.path.join(HERE, e["file"])) as f:
        exp = json.load(f)
    with open(os.path.join(HERE, g["file"])) as f:
        vault = json.load(f)
    app = e["app"]
    assert list(exp) == ["version", "generation", "export", "root_check", "table_mac", "apps"], list(exp)
    assert exp["version"] == 2 and exp["export"] == app and list(exp["apps"]) == [app], exp["apps"].keys()
    assert exp["generation"] == vault["generation"] and exp["root_check"] == vault["root_check"]
    assert exp["apps"][app] == vault["apps"][app], "the export's section differs from the vault's"
    root = h(g["root"])
    sec = exp["apps"][app]
    inp = table_input(exp["generation"], {app: table_entry(sec)}, b"ov/v2/export")
    eq("export input", inp, h(e["table"]["input"]))
    eq("export table_mac", hmac256(table_key(root), inp), b64(exp["table_mac"]))
    eq("export table_mac vector", b64(exp["table_mac"]), h(e["table"]["table_mac"]))
    full = table_input(exp["generation"], {app: table_entry(sec)})
    assert hmac256(table_key(root), full) != b64(exp["table_mac"]), "an export's table_mac verifies as a vault's"
    want = [a for a in g["apps"] if a["app"] == app][0]
    opened = 0
    for gd in want["deployments"]:
        if gd.get("retired"):
            continue
        dk = h(gd["key"])
        d = sec["deployments"][gd["deployment"]]
        eq("export grant check " + gd["deployment"], grant_check(dk, app, gd["deployment"], gd["generation"]), b64(d["check"]))
        ak = xopen(hkdf_sha256(dk, "ov/v2/grant-wrap-key"), b64(d["grant"]),
                   grant_aad(app, gd["deployment"], d["generation"], sec["epoch"], b64(sec["mac"])))
        vk, mk, ck = subkeys(ak)
        got = {name: xopen(vk, b64(s), value_aad(app, sec["epoch"], name)).decode() for name, s in sec["secrets"].items()}
        if got != want["secrets"]:
            sys.exit("MISMATCH export secrets of %s: %r" % (app, got))
        opened += 1
    assert opened >= 1, "no current deployment opened the export"
    return opened


def open_golden(g, version, eq):
    """Unlocks the golden file of g with its password and opens every app."""
    h = bytes.fromhex
    b64 = base64.b64decode
    with open(os.path.join(HERE, g["file"])) as f:
        vault = json.load(f)
    assert vault["version"] == version, (g["file"], vault["version"])
    assert ("table_mac" in vault) == (version == 2), g["file"]
    assert ("generation" in vault) == (version == 2), g["file"]
    if version == 2:
        # SPEC.md section 8: New, 2 x create app, 3 x set, rotate, set, 2 x grant, revoke: one per write.
        assert vault["generation"] == g["generation"] == 11, (vault["generation"], g.get("generation"))
        assert list(vault)[:2] == ["version", "generation"], list(vault)  # the writer's order
    else:
        assert "generation" not in g, g["file"]
    k = vault["kdf"]
    salt = b64(k["salt"])
    kek = argon2id(g["password"].encode(), salt, k["time"], k["memory_kib"], k["threads"])
    wrapped = b64(vault["wrapped_root"])
    root = xopen(kek, wrapped, root_aad(version, k["time"], k["memory_kib"], k["threads"], salt))
    try:  # the version is bound: the other version's AAD does not unwrap it
        xopen(kek, wrapped, root_aad(3 - version, k["time"], k["memory_kib"], k["threads"], salt))
        sys.exit("MISMATCH %s unwraps with the root AAD of version %d" % (g["file"], 3 - version))
    except InvalidTag:
        pass
    eq("golden root " + g["file"], root, h(g["root"]))
    eq("golden root_check " + g["file"], root_check(root), b64(vault["root_check"]))
    want = {a["app"]: a for a in g["apps"]}
    assert sorted(want) == sorted(vault["apps"])
    table = {}
    for app, sec in vault["apps"].items():
        epoch = sec["epoch"]
        ak = app_key(root, app, epoch)
        eq("golden app key " + app, ak, h(want[app]["app_key"]))
        vk, mk, ck = subkeys(ak)
        eq("golden check " + app, check(ck, app, epoch), b64(sec["check"]))
        entries = {name: b64(s) for name, s in sec["secrets"].items()}
        eq("golden mac " + app, hmac256(mk, mac_input(app, epoch, entries)), b64(sec["mac"]))
        got = {name: xopen(vk, s, value_aad(app, epoch, name)).decode() for name, s in entries.items()}
        if got != want[app]["secrets"]:
            sys.exit("MISMATCH golden secrets of %s in %s: %r" % (app, g["file"], got))
        deps, retired = {}, []
        if version == 2:
            for dep, d in sec["deployments"].items():
                deps[dep] = (d["generation"], d["created"], d["rotated"], b64(d["check"]), b64(d["grant"]))
            retired = [(r["deployment"], r["generation"], b64(r["check"]), r["retired"], r["reason"]) for r in sec["retired"]]
            # SPEC section 2: a deployment's generation is its app's epoch when it was
            # granted or rotated, so never above the current epoch; a retired one is
            # below it (a revoke or a rotation moved the app on). The recipe grants
            # web's default and edge at epoch 2.
            assert all(1 <= d["generation"] <= epoch for d in sec["deployments"].values()), (app, epoch)
            assert all(1 <= r["generation"] < epoch for r in sec["retired"]), (app, epoch)
            if app == "web":
                assert [d["generation"] for d in sec["deployments"].values()] == [2], sec["deployments"]
                assert [(r["deployment"], r["generation"]) for r in sec["retired"]] == [("edge", 2)], sec["retired"]
            # Open the app as ov-init does with each deployment key: find the grant by
            # its check, unwrap A bound to the current epoch and the section's MAC.
            for gd in want[app].get("deployments", []):
                dk = h(gd["key"])
                eq("golden deployment key " + app + "/" + gd["deployment"],
                   deployment_key(root, app, gd["deployment"], gd["generation"]), dk)
                c = grant_check(dk, app, gd["deployment"], gd["generation"])
                if gd.get("retired"):
                    match = [r for r in sec["retired"] if r["deployment"] == gd["deployment"] and r["generation"] == gd["generation"]]
                    assert match and b64(match[0]["check"]) == c and match[0]["reason"] == gd["retired"], gd
                    assert all(b64(d["check"]) != c for d in sec["deployments"].values()), "retired key still granted"
                    continue
                d = sec["deployments"][gd["deployment"]]
                eq("golden grant check " + gd["deployment"], c, b64(d["check"]))
                a = xopen(hkdf_sha256(dk, "ov/v2/grant-wrap-key"), b64(d["grant"]),
                          grant_aad(app, gd["deployment"], d["generation"], epoch, b64(sec["mac"])))
                eq("golden grant opens to A " + gd["deployment"], a, ak)
        table[app] = (epoch, b64(sec["check"]), b64(sec["mac"]), deps, retired)
    if version == 2:
        eq("golden table_mac " + g["file"], hmac256(table_key(root), table_input(vault["generation"], table)),
           b64(vault["table_mac"]))
    return len(vault["apps"])


if __name__ == "__main__":
    main()
