"""parity.bisect"""
