"""parity.record"""
