"""``dgm zoo``: list the registered models, show a model card, convert official checkpoints.

* ``dgm zoo list [--pretrained]``: registered names and weight tags (``NAME.TAG``), whether
  weights resolve, and the headline metric of the card;
* ``dgm zoo card NAME[.TAG]``: the JSON model card of those weights (bundled or in
  ``$DGM_WEIGHTS_DIR``);
* ``dgm zoo convert IN.pt OUT.safetensors --arch wrn|fashion``: map an original CNN-F
  checkpoint (yjhuangcd/CNNF) to our parameters (``zoo.convert``) and write weights + card,
  with the original's inference settings (logit feedback, η = 0.1, recomputed norms, "avg"
  readout; WRN: nearest-upsampling head, 2 cycles, ind 5; Fashion-MNIST: 1 cycle, ind 2).
"""
from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("zoo", help="list models, show cards, convert official weights",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="zoo_command", required=True)
    ls = sub.add_parser("list", help="registered models")
    ls.add_argument("--pretrained", action="store_true", help="only those with weights")
    ls.set_defaults(func=run_list)
    card = sub.add_parser("card", help="print the model card of NAME's weights")
    card.add_argument("name", help="NAME or NAME.TAG")
    card.set_defaults(func=run_card)
    conv = sub.add_parser("convert", help="convert an original CNN-F .pt checkpoint")
    conv.add_argument("input", help="original checkpoint (.pt), read with weights_only=True")
    conv.add_argument("output", help="OUT.safetensors (the card goes to OUT.json)")
    conv.add_argument("--arch", choices=("wrn", "fashion"), required=True)
    conv.add_argument("--ind", type=int, default=None, help="feedback level (default: released)")
    conv.set_defaults(func=run_convert)


def run_list(args: argparse.Namespace) -> int:
    from zoo.models import hub
    from zoo.weights import read_card
    names = set(hub.list_models()) | set(hub.list_models(pretrained=True))
    for name in sorted(n for n in names if not args.pretrained or hub.has_weights(n)):
        status, metric = "no weights", ""
        if hub.has_weights(name):
            status = "weights"
            test = read_card(hub.weights_path(name)).get("metrics", {}).get("test")
            if isinstance(test, dict) and "accuracy" in test:
                metric = f"test accuracy {test['accuracy']:.4f} (n={test.get('n', '?')})"
        print(f"{name:<20} {status:<10} {metric}")
    return 0


def run_card(args: argparse.Namespace) -> int:
    from zoo.models import hub
    from zoo.weights import read_card
    path = hub.weights_path(args.name)   # not found / unknown name: `error:` + hint, status 2
    print(json.dumps({"path": str(path), **read_card(path)}, indent=2))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    import torch

    from zoo.convert import convert_official_cnnf, official_arch
    from zoo.models import cnnf_wrn, fashion_cnnf
    from zoo.models.wrn import default_ind
    from zoo.weights import save_weights

    params = convert_official_cnnf(args.input, args.arch, ind=args.ind)
    shape = official_arch(args.input, args.arch)
    if args.arch == "wrn":
        ind = default_ind(shape["depth"]) if args.ind is None else args.ind
        arch = {"depth": shape["depth"], "widen": shape["widen"], "cycles": 2, "ind": ind,
                "num_classes": shape["num_classes"], "norm": "original", "mode": "original",
                "readout": "avg", "head": "nearest"}
        net = cnnf_wrn(**arch)
        dataset = "cifar10"
    else:
        arch = {"cycles": 1, "ind": 2 if args.ind is None else args.ind, "norm": "original",
                "mode": "original", "readout": "avg"}
        net = fashion_cnnf(**arch)
        dataset = "fashion-mnist"
    with torch.no_grad():
        for name, p in net.params().items():
            p.copy_(params[name])
    card = {"name": None, "arch": arch, "dataset": dataset, "input_range": [-1.0, 1.0],
            "input_scaling": "x = pixel / 255 * 2 - 1",
            "training": {"source": f"converted from the original CNN-F checkpoint "
                                   f"{args.input} (yjhuangcd/CNNF) by `dgm zoo convert`",
                         "recipe": "adversarial (PGD-7 on the first pass), original-cnnf.md §C"},
            "metrics": {}, "threat_model": "L-inf, eps = 8/255 (CIFAR-10) / 0.1 (Fashion-MNIST) "
                                           "in [0, 1] pixel units; not re-measured here"}
    sha = save_weights(net, args.output, card)
    print(json.dumps({"output": args.output, "sha256": sha, "arch": arch,
                      "tensors": len(params)}))
    return 0
