"""The twin: moto's server on 127.0.0.1 with sagetwin's handlers in front, an assumed
SageMaker role to call it with, and the environment that points clients at it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sagetwin.aws.changes import VARIABLE as CHANGES_VARIABLE
from sagetwin.aws.changes import Changes
from sagetwin.aws.endpoints import Endpoints
from sagetwin.aws.experiments import Experiments
from sagetwin.aws.guard import Guard, moto_credentials
from sagetwin.aws.iam_simulation import EXECUTION_POLICY, simulate
from sagetwin.aws.instance_types import set_aside_motos_own_check
from sagetwin.aws.listing import register
from sagetwin.aws.s3 import load_all, save_all
from sagetwin.aws.server import LoopbackServer
from sagetwin.aws.signatures import Secret
from sagetwin.aws.spot import InterruptWhen
from sagetwin.aws.training import TrainingJobs
from sagetwin.aws.transform_jobs import TransformJobs
from sagetwin.aws.wsgi import TwinApp
from sagetwin.core.errors import ConfigurationError
from sagetwin.core.paths import home_dir, private_dir, private_folders, unique_name

HOST = "127.0.0.1"
ACCOUNT = "123456789012"  # moto's account
ROLE_NAME = "SageMakerExecutionRole"
HOOK_DIR = Path(__file__).with_name("hook")
TRUST_POLICY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
LOOPBACK = "127.0.0.1,localhost"
CREDENTIALS_S = 12 * 3600  # the handed-out role's credentials expire, as AWS's do: the longest a role allows
# variables that would send a client elsewhere than AWS_ENDPOINT_URL, or to a profile's settings
CLEARED_PREFIXES = ("AWS_ENDPOINT_URL_",)
CLEARED_NAMES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


def cleared(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` without what would take a client past the twin."""
    return {k: v for k, v in environ.items() if k not in CLEARED_NAMES and not k.startswith(CLEARED_PREFIXES)}


def with_loopback(value: str | None) -> str:
    """A proxy exclusion list that also excludes the twin's address (botocore and urllib honour it)."""
    return ",".join(filter(None, [value, LOOPBACK]))


class TwinClients:
    """boto3 clients the twin uses to read and write its own state, through its own API, with a
    key of its own that nobody else holds."""

    def __init__(self, url: str, region: str, access_key: str, secret: Secret) -> None:
        import boto3

        self.url, self.region, self.account = url, region, ACCOUNT
        self.access_key = access_key
        session = boto3.session.Session(region_name=region, aws_access_key_id=access_key,
                                        aws_secret_access_key=secret.secret_key)
        for service in ("s3", "logs", "sagemaker", "iam", "sts", "cloudwatch"):
            setattr(self, service, session.client(service, endpoint_url=url))

    def role_exists(self, arn: str) -> bool:
        if ":role/" not in arn:
            return False
        try:
            self.iam.get_role(RoleName=arn.rsplit("/", 1)[-1])
        except self.iam.exceptions.NoSuchEntityException:
            return False
        return True


class Twin:
    """``start()`` it, point clients at ``environment()``, ``stop()`` it (or use ``with``).

    One at a time per process: moto keeps its state in the process, so two twins would share it.
    """

    running: Twin | None = None

    def __init__(self, backend: str = "process", *, port: int = 0, region: str = "us-east-1",
                 backend_options: dict[str, Any] | None = None, persist: bool = True,
                 interrupt_spot: str | None = None) -> None:
        self.backend, self.port, self.region = backend, port, region
        self.interrupt_spot = InterruptWhen.parse(interrupt_spot) if interrupt_spot else None  # refused before start
        self.backend_options = dict(backend_options or {})
        self.persist = persist
        self.store = home_dir() / "aws" / "s3"
        self.work_dir = home_dir() / "aws" / "work" / unique_name("twin")
        self.credentials: dict[str, str] = {}
        self._server: Any = None
        self.jobs: TrainingJobs | None = None
        self._entry: Path | None = None
        self.endpoints: Endpoints | None = None
        self.transforms: TransformJobs | None = None
        self.changes: Changes | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"

    def start(self) -> Twin:
        from sagetwin.core.plugins import get_backend_entry

        get_backend_entry(self.backend)  # an unknown backend fails here, naming the installed ones
        os.environ["NO_PROXY"] = with_loopback(os.environ.get("NO_PROXY"))  # the twin's own clients, too
        os.environ["no_proxy"] = with_loopback(os.environ.get("no_proxy"))
        if Twin.running is not None:
            raise ConfigurationError(f"an AWS twin already runs in this process ({Twin.running.url}).",
                                     "use that one, or stop() it before starting another.")
        moto = _moto()
        private_dir(self.work_dir.parent.parent)
        private_folders(self.work_dir.parent.parent, self.work_dir.parent.name, self.work_dir.name)
        self._reset_moto()  # moto keeps its state per process: a twin starts from nothing but what it kept
        own_key, own_secret = "STWIN" + secrets.token_hex(8).upper(), Secret(secrets.token_urlsafe(30))
        # the guard is whole before the socket is served: the twin's own key, and the credentials
        # created through the twin (its assumed role among them), each checked against its secret
        guard = Guard(0, {own_key: own_secret}, more_keys=moto_credentials)
        self._server = LoopbackServer(self._app(moto, guard), HOST, guard, self.port).start()
        self.port = self._server.port
        Twin.running = self
        try:
            self.clients = TwinClients(self.url, self.region, own_key, own_secret)
            self.changes = Changes(self.work_dir / "changes")
            self._wire_handlers()
            self.credentials = self._assume_role()
            if self.persist:
                load_all(self.clients.s3, self.store)
            self._entry = register(os.getpid(), self.url, self.backend, self.region, self.credentials,
                                   work_dir=self.work_dir)
            self.jobs.prepare_runner()
        except BaseException:
            self._close(save=False)
            raise
        return self

    def _app(self, moto: Any, guard: Guard) -> TwinApp:
        set_aside_motos_own_check()  # instance types: the service model's enum, checked by the twin
        self._twin_app = TwinApp(moto.DomainDispatcherApplication(moto.create_backend_app), {}, {}, guard)
        return self._twin_app

    def _wire_handlers(self) -> None:
        self.jobs = TrainingJobs(self.clients, self.work_dir / "jobs", self.backend, self.backend_options,
                                 environment=lambda: {**cleared(dict(os.environ)), **self.environment()},
                                 interrupt_spot=self.interrupt_spot)
        self.endpoints = Endpoints(self.clients, self.work_dir / "endpoints", self.backend, self.backend_options)
        self.transforms = TransformJobs(self.clients, self.work_dir / "transforms", self.backend, self.backend_options)
        self._twin_app.operations.update({**self.jobs.operations(), **self.endpoints.operations(),
                                          **self.transforms.operations(), **Experiments(self.clients).operations()})
        self._twin_app.runtime.update(self.endpoints.runtime())
        self._twin_app.iam["SimulatePrincipalPolicy"] = lambda body: simulate(self.clients.iam, body)
        if self.changes is not None:
            self.jobs.changed = self.endpoints.changed = self.transforms.changed = self.changes.signal

    def rehearse_spot_interruptions(self, when: str | None) -> None:
        """Interrupt each managed spot job created from now on once, ``when`` (``30s``, ``40lines``,
        ``/REGEX/``: see ``sagetwin.aws.spot``); None stops the rehearsals."""
        self.interrupt_spot = InterruptWhen.parse(when) if when else None
        if self.jobs is not None:
            self.jobs.interrupt_spot = self.interrupt_spot

    def _assume_role(self) -> dict[str, str]:
        """The identity clients get: an assumed SageMaker role, as in a SageMaker notebook."""
        self.clients.iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                                     MaxSessionDuration=CREDENTIALS_S)
        self.clients.iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="AmazonSageMakerFullAccess-core",
                                         PolicyDocument=json.dumps(EXECUTION_POLICY))
        creds = self.clients.sts.assume_role(RoleArn=self.role_arn, RoleSessionName="SageMaker",
                                             DurationSeconds=CREDENTIALS_S)["Credentials"]
        return {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                "AWS_SESSION_TOKEN": creds["SessionToken"]}

    def environment(self) -> dict[str, str]:
        """What a client process needs: the standard variables, plus the hook that catches the SDK's
        explicit STS URL (see ``client_hook``). Nothing is read from or written to ``~/.aws``."""
        pythonpath = os.pathsep.join(filter(None, [str(HOOK_DIR), os.environ.get("PYTHONPATH")]))
        return {"AWS_ENDPOINT_URL": self.url, "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region,
                **self.credentials, "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "SAGETWIN_AWS_ENDPOINT": self.url,
                **({CHANGES_VARIABLE: str(self.changes.path)} if self.changes is not None else {}),
                "PYTHONPATH": pythonpath, "NO_PROXY": with_loopback(os.environ.get("NO_PROXY")),
                "no_proxy": with_loopback(os.environ.get("no_proxy"))}

    def stop(self) -> None:
        """Delete every endpoint, stop every job, keep S3 on disk, close the server."""
        self._close(save=self.persist)

    def _close(self, *, save: bool) -> None:
        if self._server is None:
            return
        try:
            steps = [self.endpoints.delete_all if self.endpoints else None, self.jobs.stop_all if self.jobs else None,
                     self.transforms.stop_all if self.transforms else None, self._save_s3 if save else None]
            errors = [error for error in map(_attempt, filter(None, steps)) if error is not None]
            if errors:  # every step ran; the first failure is the one reported
                raise errors[0]
        finally:
            self._reset_moto()  # moto's state is the process's: nothing of this twin outlives it
            self._server.stop()
            self._server = None
            if self.changes is not None:
                self.changes.close()
                self.changes = None
            Twin.running = None
            if self._entry is not None:
                self._entry.unlink(missing_ok=True)
                self._entry = None
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _reset_moto(self) -> None:
        """moto's state emptied, and its random generator (the source of the keys and secrets it
        hands out) seeded from the system's, so nobody can replay it."""
        from moto.moto_api._internal import mock_random
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        mock_random.seed(secrets.randbits(256))

    def _save_s3(self) -> None:
        """The store becomes exactly this run's S3 (deleted objects stay deleted), or stays as it was."""
        fresh = self.store.with_name("s3.saving")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        save_all(self.clients.s3, fresh)
        shutil.rmtree(self.store, ignore_errors=True)
        fresh.rename(self.store)

    def __enter__(self) -> Twin:
        return self.start() if self._server is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _attempt(step: Any) -> BaseException | None:
    try:
        step()
    except Exception as exc:
        return exc
    return None


def _moto() -> Any:
    """moto's server pieces, or a clear error naming the install that adds them."""
    try:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    except ImportError:
        raise ConfigurationError("the AWS twin needs moto's server, which is not installed.",
                                 "pip install 'sagetwin[aws]' (moto[server], waitress and s3fs).") from None
    return SimpleNamespace(DomainDispatcherApplication=_verified_dispatcher(DomainDispatcherApplication),
                           create_backend_app=create_backend_app)


def _verified_dispatcher(base: type) -> type:
    """moto's dispatcher, routing a request by the scope of its verified signature only
    (``sagetwin.scope``, set by the guard), never by a header, body or path the signature does
    not cover, and never to moto's own controls (``/moto-api``): a request signed for S3 reaches
    S3, whatever ``X-Amz-Target`` or ``Action=`` it carries besides."""

    class VerifiedDispatcher(base):  # type: ignore[misc, valid-type]
        def get_application(self, environ: dict[str, Any]) -> Any:
            region, service = environ["sagetwin.scope"]  # KeyError: not past the guard, never served
            routing = {"HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential=-/-/{region}/{service}/aws4_request",
                       # the rest moto reads within a service is covered by the signature (the guard's rules)
                       **{key: environ[key] for key in ("PATH_INFO", "HTTP_HOST", "HTTP_X_AMZ_TARGET")
                          if key in environ}}
            with self.lock:
                host = self.infer_service_region_host(routing, routing.get("PATH_INFO", ""))
                backend = self.get_backend_for_host(host) if host else None
                if backend is None or backend == "moto_api":
                    raise LookupError(f"no AWS service answers for the signing scope {service!r}")
                app = self.app_instances.get(backend)
                if app is None:
                    app = self.app_instances[backend] = self.create_app(backend)
            return app

    return VerifiedDispatcher
