"""Request dependencies shared by the routers: the runtime, operator keys with scopes, device tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from mcuota.server import credentials
from mcuota.server.errors import Forbidden, ServiceError, Unauthorized
from mcuota.server.fleet import ApiKey, DeviceRow
from mcuota.server.runtime import Runtime

admin_bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                          description="operator API key (mca_…) with scope read, write or admin")
device_bearer = HTTPBearer(auto_error=False, scheme_name="DeviceToken",
                           description="the device's token (mcd_…), issued once at registration")
device_query = APIKeyQuery(name="token", auto_error=False, scheme_name="DeviceTokenQuery",
                           description="the device token as a query parameter, for agents that cannot set "
                                       "headers (seed-002 flow only)")


class NotReady(ServiceError):
    status = 503
    code = "starting"


async def get_runtime(request: Request) -> Runtime:
    """Async on purpose, like :func:`device`: a sync dependency costs a trip through the threadpool."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise NotReady("the server is starting")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
AdminCreds = Annotated[HTTPAuthorizationCredentials | None, Security(admin_bearer)]
DeviceCreds = Annotated[HTTPAuthorizationCredentials | None, Security(device_bearer)]
QueryToken = Annotated[str | None, Security(device_query)]


def require(scope: str) -> Callable[..., ApiKey]:
    """A dependency admitting operator keys that grant ``scope``."""

    def dependency(runtime: RuntimeDep, creds: AdminCreds) -> ApiKey:
        if creds is None or not creds.credentials:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        key = runtime.fleet.authenticate_key(creds.credentials)
        if not credentials.grants(key.scopes, scope):
            raise Forbidden(f"API key {key.name!r} lacks the {scope!r} scope", code="insufficient_scope")
        return key

    dependency.__name__ = f"require_{scope}"
    return dependency


async def device(runtime: RuntimeDep, creds: DeviceCreds) -> DeviceRow:
    """A recently verified token is answered from memory on the event loop; any other goes to the
    database in the threadpool."""
    if creds is None or not creds.credentials:
        raise Unauthorized("missing device token: send 'Authorization: Bearer <token>'", code="missing_token")
    known = runtime.fleet.cached_device(creds.credentials)
    if known is not None:
        return known
    return await run_in_threadpool(runtime.fleet.authenticate_device, creds.credentials)


def seed002_device(serial: str, runtime: RuntimeDep, creds: DeviceCreds, token: QueryToken) -> DeviceRow:
    secret = creds.credentials if creds is not None and creds.credentials else token
    if not secret:
        raise Unauthorized("missing device token: send 'Authorization: Bearer <token>' or ?token=",
                           code="missing_token")
    return runtime.fleet.authenticate_device(secret, serial)
