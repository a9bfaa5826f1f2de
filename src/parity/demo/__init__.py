"""parity.demo"""
