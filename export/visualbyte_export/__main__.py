"""``python -m visualbyte_export <command> ARGS`` runs ``visualbyte_export.<command>.main(ARGS)``.

Subcommands are modules of this package with a ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "data": "Build the training/evaluation dataset (rendered by the runtime).",
    "train": "Train the model.",
    "export": "Export the trained model to ONNX.",
    "evaluate": "Evaluate a model per modality.",
    "fixture": "Write a tiny model for the runtime's tests.",
    "teacher": "Compute the picture teacher's features of a dataset's pictures.",
    "probe": "Ask models the leave-one-engine-out probe's spoken questions.",
    "hearing": "Check with Whisper that the training speech says its class.",
    "bundle": "Cut a dataset into parts a GPU machine can take; strip/join checkpoints.",
    "blend": "Blend a run with the exported model it continued from (weight space).",
}

# Module that implements a command, where it is not named like the command.
MODULES = {"export": "export_onnx"}


def usage() -> str:
    lines = ["usage: python -m visualbyte_export <command> [args...]", "", "commands:"]
    lines += [f"  {name:10s} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if not command.isidentifier():
        print(f"unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = MODULES.get(command, command)
    try:
        module = importlib.import_module(f"visualbyte_export.{module_name}")
    except ModuleNotFoundError as err:
        if err.name != f"visualbyte_export.{module_name}":
            raise
        print(f"unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if not hasattr(module, "main"):
        print(
            f"command {command!r}: visualbyte_export.{module_name} has no main(argv)",
            file=sys.stderr,
        )
        return 2
    result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
