"""Developer tools: faithful fakes of remote APIs that cannot run on this machine, and the demo.
Never imported by service code."""
