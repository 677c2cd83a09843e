#!/bin/bash
# Issue 24: fine-tuning from the speedrun recipe's checkpoint (pretrained on train_fit) vs random init, equal budget.
cd "$(dirname "$0")/../.."
CK=runs/fmnist_study/none_fmnist_speedrun_n50000_e4_s0/checkpoint.pt
FT="data.dataset=fashion_mnist data.root=data data.train_split=train_fit data.val_split=train_holdout data.test_split=test data.batch_size=128 data.num_workers=0 optim.epochs=3 optim.warmup_epochs=1 optim.layer_decay=0.75 run.device=cpu run.val_every_epochs=1"
init=${1:?usage: bash benchmarks/finetune_segmentation/finetune.sh pretrained|random}
OMP_NUM_THREADS=1 "${PYTHON:-python}" -m downstream.finetune --checkpoint $CK model.init=$init $FT run.output_dir=runs/ft_$init --output benchmarks/finetune_segmentation/results/ft_$init.json
