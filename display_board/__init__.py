"""display_board"""
