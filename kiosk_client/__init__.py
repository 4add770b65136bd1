"""kiosk_client"""
