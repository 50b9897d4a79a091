"""Tokens tag: the caller's own API tokens."""
from accounts import tokens
from handlers import serialize
from web.request_context import actor
from web.unbuilt import not_implemented

__getattr__ = not_implemented(__name__)


def list_tokens(token_info, page=1, per_page=25):
    rows = tokens.list_tokens(token_info["sub"], page, per_page)
    return {"tokens": serialize.tokens.dump(rows, many=True)}


def create_token(body, token_info):
    token, secret = tokens.create_token(actor(token_info), body["name"], body.get("expiresAt"),
                                        body.get("scope"))
    return {**serialize.tokens.dump(token), "accessToken": secret}, 201


def get_token(token_id, token_info):
    return serialize.tokens.dump(tokens.get_token(token_info["sub"], token_id))


def delete_token(token_id, token_info):
    tokens.delete_token(actor(token_info), token_id)
    return None, 204
