from downstream.attention.cli import main

main()
