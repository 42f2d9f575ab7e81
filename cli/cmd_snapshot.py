"""``save``, ``restore``, ``inspect``, ``diff`` and ``keygen``: snapshot files and their keys.

Keys stay on this side: the daemon checkpoints and sends the payload (chunked over the control
socket), the command seals it as the chunks arrive and writes the file atomically; restore
checks the whole seal here first, then streams the verified payload to the daemon, which alone
decodes it, under the codec's limits. Neither holds more than a chunk of the payload.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from rich.table import Table
from rich.text import Text

from migrate import store
from migrate.freshness import Freshness, check_freshness, parse_duration
from migrate.keys import (
    generate_signing_key,
    generate_symmetric_key,
    key_id,
    load_private_key,
    load_public_key,
    load_symmetric_key,
    public_key_id,
)
from migrate.plan_view import plan_table
from migrate.proof_words import checked_in
from migrate.seal import Seal, SealInfo, Trust
from service.client import DeviceClient
from service.errors import Refused
from service.plan_data import plan_from_dict
from service.protocol import CHUNK, RemoteError
from service.transfer import checkpoint, commit, upload

from . import device_option
from .exits import Exit, UsageError
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter


def _trust_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust", action="append", default=[], metavar="PUBKEY",
                        help="Ed25519 public key (repeatable): a valid signature by one of "
                             "these keys is required")
    parser.add_argument("--hmac", metavar="KEY",
                        help="shared HMAC-SHA256 key file: a valid MAC by it is required")
    parser.add_argument("--decrypt", "--decrypt-key", dest="decrypt", metavar="KEY",
                        help="AES-256-GCM key file: the file must be encrypted with it")
    parser.add_argument("--require-signature", action="store_true",
                        help="refuse files without a verified signature or MAC (implied by "
                             "--trust and --hmac)")


def _freshness_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-age", metavar="DURATION",
                        help="refuse a snapshot created longer ago (90s, 15m, 2h, 7d)")
    parser.add_argument("--min-generation", type=int, metavar="N",
                        help="refuse a snapshot whose source generation is below N")
    parser.add_argument("--no-rollback", action="store_true",
                        help="refuse a generation of a source older than the newest this "
                             "target restored from it (the target keeps the record)")


def register(sub: Any) -> None:
    save = sub.add_parser(
        "save", help="checkpoint a device into a sealed snapshot file", formatter_class=RAW,
        description="The daemon checkpoints its device (programs as original bytecode, maps "
                    "with contents, negotiated features); the file is sealed (SHA-256, "
                    "optionally signed or MACed and encrypted) and written atomically, mode 0600.",
        epilog="examples:\n"
               "  offload-migrate save --device /tmp/a.sock -o a.snap\n"
               "  offload-migrate save --device /tmp/a.sock -o a.snap --sign ops.key "
               "--encrypt data.key\n"
               "  offload-migrate save --device /tmp/a.sock -o a.snap --sample 256")
    device_option.add(save)
    save.add_argument("-o", "--output", required=True, metavar="FILE", help="snapshot file")
    save.add_argument("--sign", metavar="KEY", help="Ed25519 private key (from keygen)")
    save.add_argument("--hmac", metavar="KEY", help="shared HMAC-SHA256 key instead of a "
                                                    "signature")
    save.add_argument("--encrypt", metavar="KEY", help="AES-256-GCM key file")
    save.add_argument("--sample", type=int, default=0, metavar="N",
                      help="keep up to N frames the device received recently in the snapshot "
                           "(the daemon samples with --sample-ring) for restore --prove")
    save.set_defaults(handler=save_command)

    restore = sub.add_parser(
        "restore", help="restore a snapshot onto a device (or dry-run its plan)",
        formatter_class=RAW,
        description="Check the seal against the trust policy (--trust or --hmac: a valid "
                    "signature or MAC by a given key is required; --decrypt: the file must be "
                    "encrypted) and the freshness options, plan the restore against the "
                    "target's capabilities (compatible, rewritable, fallback or incompatible "
                    "per object) and apply it all or nothing through the target's driver. "
                    "--dry-run prints the report and changes nothing. Exit 1 when the target "
                    "or a freshness option refuses, 3 when the seal does not verify or does "
                    "not meet the trust policy.",
        epilog="examples:\n"
               "  offload-migrate restore a.snap --device /tmp/b.sock --dry-run\n"
               "  offload-migrate restore a.snap --device /tmp/b.sock --trust ops.key.pub "
               "--decrypt data.key\n"
               "  offload-migrate restore a.snap --device /tmp/b.sock --trust ops.key.pub "
               "--max-age 1h --no-rollback\n"
               "  offload-migrate restore a.snap --device /tmp/smartnic.sock --prove")
    restore.add_argument("file", help="snapshot file")
    device_option.add(restore)
    _trust_options(restore)
    _freshness_options(restore)
    restore.add_argument("--allow-fallback", action="store_true",
                         help="keep objects the target cannot offload in the guest")
    restore.add_argument("--dry-run", action="store_true",
                         help="print the compatibility report, change nothing")
    restore.add_argument("--prove", action="store_true",
                         help="first show, on scratch devices, that the program as the target "
                              "will run it treats the snapshot's sampled frames (and, for a "
                              "rewritten program, frames built from them) as the source's "
                              "did; a difference refuses the restore (exit 1)")
    restore.add_argument("--prove-frames", metavar="FILE.pcap",
                         help="prove with these frames instead of the snapshot's sample "
                              "(implies --prove)")
    restore.add_argument("--json", action="store_true", help="print the outcome as JSON")
    restore.set_defaults(handler=restore_command)

    inspect = sub.add_parser(
        "inspect", help="show a snapshot file: seal, features, programs, maps",
        formatter_class=RAW,
        description="Header, seal information, negotiated features by name, programs with "
                    "their disassembly, map summaries. The seal is checked first.",
        epilog="examples:\n  offload-migrate inspect a.snap\n"
               "  offload-migrate inspect a.snap --trust ops.key.pub --json")
    inspect.add_argument("file", help="snapshot file")
    _trust_options(inspect)
    inspect.add_argument("--no-disasm", action="store_true", help="leave out the listings")
    inspect.add_argument("--json", action="store_true", help="print as JSON")
    inspect.set_defaults(handler=inspect_command)

    diff = sub.add_parser(
        "diff", help="compare two snapshots", formatter_class=RAW,
        description="Programs added, removed or changed (bytecode, map references, attach), "
                    "maps added, removed or with a changed spec, per-map entries added, removed "
                    "and changed, features.",
        epilog="example:\n  offload-migrate diff before.snap after.snap --json")
    diff.add_argument("a", help="first snapshot")
    diff.add_argument("b", help="second snapshot")
    _trust_options(diff)
    diff.add_argument("--json", action="store_true", help="print as JSON")
    diff.set_defaults(handler=diff_command)

    keygen = sub.add_parser(
        "keygen", help="generate a signing, MAC or encryption key", formatter_class=RAW,
        description="ed25519: a private key (PEM PKCS#8, 0600) and FILE.pub (PEM, 0644); "
                    "hmac and aes: 32 random bytes as hex (0600).",
        epilog="examples:\n  offload-migrate keygen --type ed25519 -o ops.key\n"
               "  offload-migrate keygen --type aes -o data.key")
    keygen.add_argument("--type", required=True, choices=("ed25519", "hmac", "aes"))
    keygen.add_argument("-o", "--output", required=True, metavar="FILE")
    keygen.set_defaults(handler=keygen_command)


# ---------------------------------------------------------------------------------- keys
def seal_from(args: argparse.Namespace) -> Seal:
    if args.sign and args.hmac:
        raise UsageError("choose one of --sign and --hmac.")
    return Seal(signing_key=load_private_key(args.sign) if args.sign else None,
                mac_key=load_symmetric_key(args.hmac) if args.hmac else None,
                encryption_key=load_symmetric_key(args.encrypt) if args.encrypt else None)


def trust_from(args: argparse.Namespace) -> Trust:
    return Trust(tuple(load_public_key(path) for path in args.trust),
                 load_symmetric_key(args.hmac) if args.hmac else None,
                 load_symmetric_key(args.decrypt) if args.decrypt else None,
                 args.require_signature)


def freshness_from(args: argparse.Namespace) -> Freshness:
    max_age = None
    if args.max_age is not None:
        try:
            max_age = parse_duration(args.max_age)
        except ValueError as exc:
            raise UsageError(f"--max-age: {exc}") from None
    if args.min_generation is not None and args.min_generation < 0:
        raise UsageError("--min-generation must be 0 or more.")
    return Freshness(max_age, args.min_generation, args.no_rollback)


def describe_seal(info: SealInfo) -> str:
    parts = ["sha256"]
    if info.auth != "none":
        parts.append(f"{info.auth} (key {info.auth_key_id})")
    if info.cipher != "none":
        parts.append(f"{info.cipher} (key {info.cipher_key_id})")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------- save
def save_command(args: argparse.Namespace, out: Output) -> int:
    seal = seal_from(args)
    with DeviceClient(args.device) as client, out.transfer("checkpoint", 0) as bar:
        taken = checkpoint(client, lambda done, total: bar.update(done, total), CHUNK,
                           samples=args.sample)
        info, head = store.save_payload(args.output, taken.chunks, seal, taken.source)
    source = taken.source
    out.console.print(f"saved device [bold]{head.device}[/bold]: {taken.programs} "
                      f"programs, {taken.maps} maps, {taken.entries:,} entries -> "
                      f"{args.output} ({os.path.getsize(args.output):,} bytes, sealed: "
                      f"{describe_seal(info)}"
                      + (f", generation {source.generation}" if source else "") + ")",
                      highlight=False)
    return Exit.OK


# ---------------------------------------------------------------------------------- restore
def restore_command(args: argparse.Namespace, out: Output) -> int:
    freshness = freshness_from(args)
    trust = trust_from(args)
    frames = None
    if args.prove_frames:
        from service.pcap import read_pcap

        frames = read_pcap(args.prove_frames)
    prove = {"prove": True, "prove_frames": frames} if args.prove or frames else {}
    try:
        with store.open_verified(args.file, trust, CHUNK) as payload:
            info = payload.info
            check_freshness(info.created_ns, info.source, freshness, time.time_ns())
            with DeviceClient(args.device) as client:
                with out.transfer("restore", payload.size, show=not args.json) as bar:
                    transfer = upload(client, payload.chunks, payload.size,
                                      lambda done, total: bar.update(done, total), CHUNK)
                result = commit(
                    client, transfer, allow_fallback=args.allow_fallback, dry_run=args.dry_run,
                    source=info.source.as_dict() if info.source is not None else None,
                    authenticated=info.authenticated, no_rollback=args.no_rollback, **prove)
    except RemoteError as err:
        plan = err.data.get("plan")
        proof = err.data.get("proof")
        if args.json:
            out.json({"ok": False, "error": err.name, "message": err.message, "plan": plan,
                      "proof": proof})
        elif plan is not None and proof is not None:  # the table shows where they part
            out.console.print(plan_table(plan_from_dict(plan), proof))
        elif plan is not None:  # the table gives the reasons; the error line does not repeat them
            out.console.print(plan_table(plan_from_dict(plan)))
            raise Refused(err.errno, "the target cannot take this snapshot (the plan above "
                                    "says why); nothing was restored.") from None
        raise
    if args.json:
        out.json({"ok": True, **result})
        return Exit.OK
    render_restore(out, result, payload.head.device, info)
    return Exit.OK


def render_restore(out: Output, result: dict[str, Any], device: str,
                   info: SealInfo) -> None:
    trusted = "verified" if info.authenticated else "unauthenticated"
    generation = f", generation {info.source.generation}" if info.source is not None else ""
    out.console.print(f"snapshot of [bold]{device}[/bold] ({describe_seal(info)}, "
                      f"{trusted}{generation})", highlight=False)
    proof = result.get("proof")
    out.console.print(plan_table(plan_from_dict(result["plan"]), proof))
    if proof:
        out.console.print(f"proof: {checked_in(proof)}: the restored program "
                          f"{proof['program']} gave the "
                          f"source's verdict, output, redirect and map changes on every one",
                          highlight=False)
    if result["dry_run"]:
        out.console.print(Text("dry run: the target was not changed", style="bold"))
        return
    summary = Table.grid(padding=(0, 2))
    summary.add_row("programs", ", ".join(f"{n} -> {h}" for n, h in result["programs"].items())
                    or "-")
    summary.add_row("maps", ", ".join(f"{n} -> {h}" for n, h in result["maps"].items()) or "-")
    summary.add_row("entries", f"{result['entries']:,}")
    summary.add_row("attached", result["attached"] or "-")
    if result["fallback"]:
        summary.add_row("kept in the guest", ", ".join(result["fallback"]))
    out.console.print(summary)


# ---------------------------------------------------------------------------------- inspect
def inspect_command(args: argparse.Namespace, out: Output) -> int:
    from .snapshot_view import inspect_dict, inspect_view  # decoders and listings: only here

    snapshot, info = store.load(args.file, trust_from(args))
    data = inspect_dict(snapshot, info)
    if args.json:
        out.json(data)
    else:
        out.console.print(inspect_view(data, disassembly=not args.no_disasm), highlight=False)
    return Exit.OK


def diff_command(args: argparse.Namespace, out: Output) -> int:
    from .snapshot_view import diff_view, snapshot_diff

    trust = trust_from(args)
    a, _ = store.load(args.a, trust)
    b, _ = store.load(args.b, trust)
    data = snapshot_diff(a, b)
    if args.json:
        out.json(data)
    else:
        out.console.print(diff_view(data, (args.a, args.b)))
    return Exit.OK


# ---------------------------------------------------------------------------------- keygen
def keygen_command(args: argparse.Namespace, out: Output) -> int:
    if args.type == "ed25519":
        key = generate_signing_key(args.output)
        out.console.print(f"wrote Ed25519 private key {args.output} and public key "
                          f"{args.output}.pub (key id {public_key_id(key.public_key())})",
                          highlight=False)
    else:
        secret = generate_symmetric_key(args.output)
        use = "HMAC-SHA256" if args.type == "hmac" else "AES-256-GCM"
        out.console.print(f"wrote {use} key {args.output} (key id {key_id(secret)})",
                          highlight=False)
    return Exit.OK
