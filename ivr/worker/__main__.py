from ivr.worker.main import main

main()
