from aevolve.cli import main

main()
