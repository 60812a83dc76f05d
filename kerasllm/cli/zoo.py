"""`kerasllm zoo list` and `kerasllm zoo show NAME`."""

from __future__ import annotations

import json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("zoo", help="List and inspect model presets.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    list_parser = verbs.add_parser(
        "list", help="Every preset with its size, where its weights come from, and description."
    )
    list_parser.set_defaults(func=_list)
    show = verbs.add_parser("show", help="One preset's configuration and parameter count.")
    show.add_argument("name", help="Preset name, e.g. bert_small.")
    show.set_defaults(func=_show)


def _list(args) -> int:
    from kerasllm import zoo

    rows = zoo.list()
    # What zoo.get builds for an architecture-only preset: random weights.
    origins = [row["weights"] or "none (random init)" for row in rows]
    width = max(len(row["name"]) for row in rows)
    w_width = max(len("WEIGHTS"), *(len(origin) for origin in origins))
    print(f"{'NAME':<{width}}  {'FAMILY':<15}  {'PARAMS':>12}  {'WEIGHTS':<{w_width}}  DESCRIPTION")
    for row, origin in zip(rows, origins):
        print(
            f"{row['name']:<{width}}  {row['family']:<15}  {row['num_params']:>12,}  "
            f"{origin:<{w_width}}  {row['description']}"
        )
    return 0


def _show(args) -> int:
    from kerasllm import zoo

    preset = zoo.get_preset(args.name)
    print(
        json.dumps(
            {
                "name": preset.name,
                "family": preset.family,
                "description": preset.description,
                "num_params": zoo.num_params(preset.name),
                "tokenizer": preset.tokenizer,
                # Pretrained weights ship either as a file or through a loader function;
                # "weights_from" says where from (null: random, architecture only).
                "weights": preset.weights,
                "weights_loader": preset.weights_loader,
                "weights_from": preset.weights_origin,
                "task": preset.task,
                "task_config": preset.task_config,
                "config": preset.config,
            },
            indent=2,
        )
    )
    return 0
