"""Load tests against a running gateway: closed-loop bench and open-loop soak."""
