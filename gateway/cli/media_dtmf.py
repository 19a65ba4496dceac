"""`callgate media dtmf FILE.wav [--json]`: the in-band DTMF digits in a WAV file with start and end."""

from __future__ import annotations

import sys


def add_parser(media_subparsers) -> None:
    p = media_subparsers.add_parser("dtmf", help="detect in-band DTMF digits in a WAV file")
    p.add_argument("file", metavar="FILE.wav", help="WAV file of any rate and sample format")
    p.add_argument("--json", action="store_true", help='print [{"digit", "start", "end"}] in seconds')
    p.set_defaults(media_func=run)


def run(args) -> int:
    from gateway.media.dtmf import detect_file
    from gateway.media.wavfile import WavError

    try:
        events = detect_file(args.file)
    except WavError as exc:
        print(f"callgate media dtmf: {exc}", file=sys.stderr)
        return 2
    rows = [e.as_dict() for e in events]
    if args.json:
        from gateway.cli.output import emit_json

        emit_json(rows)
        return 0
    if not rows:
        print("no digits")
        return 0
    from gateway.cli.output import table

    for row in rows:
        row["start"], row["end"] = f"{row['start']:.3f}", f"{row['end']:.3f}"
    print(table(rows, [("digit", "DIGIT"), ("start", "START s"), ("end", "END s")]))
    return 0
