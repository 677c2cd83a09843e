#!/bin/bash
# Issue 24: the frozen-backbone linear segmentation probe of the demo model vs the same architecture at random init,
# on the composited VOC-layout set (120 train / 40 val images, 56 px, 11 classes).
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
B=runs/segbench
[ -d $B ] || "${PYTHON:-python}" -m downstream.segmentation.synth --out $B fashion_mnist=data size=56 train_images=120 val_images=40
COMMON="data.root=$B data.num_classes=11 data.image_size=56 data.num_workers=0 head.epochs=40 head.lr=1e-2 device=cpu"
"${PYTHON:-python}" -m downstream.segmentation --checkpoint runs/demo/checkpoint.pt $COMMON --output benchmarks/finetune_segmentation/results/seg_demo.json
"${PYTHON:-python}" -m downstream.segmentation model.name=vit_pico model.patch_size=7 model.pooling=simpool $COMMON --output benchmarks/finetune_segmentation/results/seg_rand.json
