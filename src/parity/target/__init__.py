"""parity.target"""
