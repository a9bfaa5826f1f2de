"""parity.env"""
