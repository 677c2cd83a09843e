"""Fashion-MNIST study: every masking strategy, several seeds, one budget (issues 15 and 25).

Run from the repository root as a module (no ``sys.path`` edits: the checkout is the working
directory)::

    python -m benchmarks.fmnist_study --recipe configs/pretrain/fmnist_speedrun.yaml --train-size 50000 --epochs 4

Modules: :mod:`.runs` (budgets, run folders, training, the results JSONL), :mod:`.evaluation` (k-NN and
linear probe on the validation split), :mod:`.attention_eval` (localization and background robustness of
each trained model), :mod:`.paired` (paired tests between strategies), :mod:`.tables`, :mod:`.pictures`,
:mod:`.cli`. Results and their README: ``benchmarks/fmnist_study/results/``.
"""
