"""Workflow-engine integrations (FireWorks, jobflow-remote) and their embedded database."""
