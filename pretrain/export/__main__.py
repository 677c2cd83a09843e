from pretrain.export.cli import main

main()
