"""Experimental APIs, as in Ray's ray.experimental (internal_kv)."""
