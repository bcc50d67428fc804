"""Check vLLM command lines with vLLM's own argument parser, without starting an engine.

Run with the vLLM environment's Python (scripts/vllm_cpu_env.sh prints it). Reads a JSON list of
argv lists (the arguments after ``vllm serve`` / the api_server module; a leading positional
model is accepted as ``vllm serve MODEL`` gives it) on stdin; prints one JSON object per line,
``{"argv": ..., "ok": bool, "error": str, "lora_modules": [...], "model": ...}``; exits 1 when
any line fails.
"""

import json
import sys

from vllm.engine.arg_utils import AsyncEngineArgs

try:  # vLLM ≥ 0.2x moved the server's parser
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
except ImportError:
    from vllm.entrypoints.openai.cli_args import make_arg_parser
try:
    from vllm.utils.argparse_utils import FlexibleArgumentParser
except ImportError:
    from vllm.utils import FlexibleArgumentParser


def check(argv):
    argv = list(argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--model", argv[0], *argv[1:]]
    parser = make_arg_parser(FlexibleArgumentParser())
    try:
        args = parser.parse_args(argv)
        engine = AsyncEngineArgs.from_cli_args(args)
    except SystemExit as exc:
        return {"argv": argv, "ok": False, "error": f"argparse exit {exc.code}"}
    except Exception as exc:  # report any refusal
        return {"argv": argv, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    loras = [f"{m.name}={m.path}" for m in (args.lora_modules or [])]
    return {"argv": argv, "ok": True, "error": "", "model": engine.model,
            "enable_lora": bool(engine.enable_lora), "max_lora_rank": engine.max_lora_rank,
            "max_model_len": engine.max_model_len, "lora_modules": loras}


def main():
    lines = json.load(sys.stdin)
    bad = 0
    for argv in lines:
        out = check(argv)
        bad += not out["ok"]
        print(json.dumps(out), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
