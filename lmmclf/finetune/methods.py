"""The fine-tuning rows of ``lmmclf eval``: "Finetuning w/o Reg." (alpha = 0) and "LMM-Reg.-CLIP".

Both read the per-seed finetune artifacts of the config's ``finetune`` section. The baseline
forces alpha = 0 (everything else equal: same seed, same order, same hyperparameters);
LMM-Reg.-CLIP uses the config's alpha, or the paper's 0.01 when the config says 0 (a config
written for the baseline must not make the two rows the same run).
"""

from __future__ import annotations

from lmmclf.evaluation.methods import Method, register_method
from lmmclf import stages

PAPER_ALPHA = 0.01  # paper 2, section 4.2


def baseline_alpha(cfg) -> float:
    return 0.0


def regularised_alpha(cfg) -> float:
    return cfg.finetune.alpha or PAPER_ALPHA


def _method(name: str, label: str, alpha_of) -> Method:
    def config(cfg):
        return cfg.override("finetune", alpha=alpha_of(cfg))

    def specs(cfg, dataset, store):
        from lmmclf.finetune.artifact import finetune_specs

        return finetune_specs(config(cfg), dataset, store)

    def command(cfg, dataset_name: str) -> str:
        return stages.command("finetune", dataset_name, ["--alpha", f"{alpha_of(cfg):g}"])

    def compute(cfg, dataset, store):
        from lmmclf.embed.run import embed_texts
        from lmmclf.finetune.run import run_finetune
        from lmmclf.prototypes import make_prototypes

        embed_texts(cfg, dataset, store)  # the prototypes' input (cached: nothing is recomputed)
        make_prototypes(cfg, dataset, store)
        run_finetune(config(cfg), store)

    return Method(name, label, specs, command, compute)


register_method(_method("finetune", "Finetuning w/o Reg.", baseline_alpha))
register_method(_method("lmm-reg", "LMM-Reg.-CLIP", regularised_alpha))
