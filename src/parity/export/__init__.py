"""parity.export"""
