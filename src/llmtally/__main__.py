from llmtally.cli import main

main()
