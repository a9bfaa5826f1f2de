"""parity.compare"""
