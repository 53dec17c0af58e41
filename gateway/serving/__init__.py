"""The HTTP gateway: assignment, routing to an arm's ranker, exposure logging, model swap."""
