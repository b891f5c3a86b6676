"""The Avtor License Manager's domain: licenses, seats and the rules over them.

Imports nothing but the standard library.
"""
