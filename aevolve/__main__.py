from aevolve._main import main

main()
