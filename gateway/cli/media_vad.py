"""`callgate media vad FILE.wav`: print the speech segments of a WAV file (a table, or JSON).

Exit codes: 0 done (also when there is no speech); 2 missing or unreadable WAV, or a bad option.
"""

from __future__ import annotations

import sys

from gateway.media.frames import SAMPLE_RATE

EXIT_USAGE = 2


def add_parser(media_subparsers) -> None:
    """Register `vad` on the `media` subcommand's subparsers."""
    from gateway.media.vad import DEFAULT_WARMUP_MS

    p = media_subparsers.add_parser("vad", help="speech segments of a WAV file (webrtcvad endpointer)")
    p.add_argument("file", metavar="FILE.wav", help="any PCM, float or G.711 WAV; converted to 8 kHz mono")
    p.add_argument("--json", action="store_true", help='a list of {"start": seconds, "end": seconds}')
    p.add_argument("--aggressiveness", type=int, default=2, metavar="N",
                   help="webrtcvad mode 0..3; higher rejects more noise (default 2)")
    p.add_argument("--start-ms", type=int, default=60, metavar="N",
                   help="voiced time before speech counts as started (default 60)")
    p.add_argument("--hangover-ms", type=int, default=300, metavar="N",
                   help="unvoiced time before speech counts as ended (default 300)")
    p.add_argument("--warmup-ms", type=int, default=DEFAULT_WARMUP_MS, metavar="N",
                   help=f"start of the file the detector settles on (default {DEFAULT_WARMUP_MS})")


def run(args) -> int:
    from gateway.media.vad import Endpointer, segments_of
    from gateway.media.wavfile import WavError, read_wav

    options = dict(aggressiveness=args.aggressiveness, start_ms=args.start_ms,
                   hangover_ms=args.hangover_ms, warmup_ms=args.warmup_ms)
    try:
        Endpointer(**options)
    except ValueError as exc:
        print(f"callgate media vad: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        samples = read_wav(args.file)
    except WavError as exc:
        print(f"callgate media vad: {exc}", file=sys.stderr)
        return EXIT_USAGE
    segments = segments_of(samples, **options)
    if args.json:
        from gateway.cli.output import emit_json
        emit_json([s.as_dict() for s in segments])
        return 0
    from gateway.cli.output import table
    if not segments:
        print(f"no speech in {args.file} ({samples.size / SAMPLE_RATE:.2f} s)")
        return 0
    rows = [{"n": i, "start": f"{s.start:.2f}", "end": f"{s.end:.2f}", "length": f"{s.duration:.2f}"}
            for i, s in enumerate(segments, 1)]
    print(table(rows, [("n", "#"), ("start", "START s"), ("end", "END s"), ("length", "LENGTH s")]))
    speech = sum(s.duration for s in segments)
    print(f"{len(segments)} segment(s), {speech:.2f} s of speech in {samples.size / SAMPLE_RATE:.2f} s")
    return 0
