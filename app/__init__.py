"""The application: the `patrol` command, process wiring, the embedded broker, the simulators' wiring."""
