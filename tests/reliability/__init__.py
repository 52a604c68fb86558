"""Reliability: runs that survive being killed, and hostile inputs refused early and clearly."""
