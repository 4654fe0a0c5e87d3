"""A real single-node Apache Kafka (KRaft broker+controller) on 127.0.0.1 for dev, tests, demo.

The jars come from Maven Central via ``tools/kafka/pom.xml`` (``scripts/bootstrap``).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from alertline.errors import AlertlineError

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
log.segment.bytes=67108864
"""

LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
"""


def cache_dir() -> Path:
    return Path(os.environ.get("ALERTLINE_CACHE") or Path.home() / ".cache" / "alertline")


class KafkaNotInstalled(AlertlineError):
    pass


@dataclass
class LocalKafka:
    home: Path
    port: int = 19092
    controller_port: int = 19093
    heap: str = "768m"
    libs: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    def _libs(self) -> Path:
        libs = self.libs or cache_dir() / "kafka-libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise KafkaNotInstalled(f"Kafka jars not found in {libs}; run scripts/bootstrap")
        return libs

    def _java(self, main: str, *args: str, **popen: object) -> subprocess.Popen[bytes]:
        cmd = [
            "java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}",
            "-cp", f"{self._libs()}/*", main, *args,
        ]  # fmt: skip
        return subprocess.Popen(cmd, **popen)  # type: ignore[call-overload, no-any-return]

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None

    def accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def up(self, timeout: float = 90.0) -> None:
        if self.pid() and self.accepting():
            return
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text(SERVER_PROPERTIES.format(port=self.port, controller_port=self.controller_port, data=data))
        (self.home / "log4j2.yaml").write_text(LOG4J2)
        if not (data / "meta.properties").exists():
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = self._java(
                "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster, "-c", str(props),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            out, _ = fmt.communicate(timeout=120)
            if fmt.returncode != 0:
                raise AlertlineError(f"kafka storage format failed: {out.decode(errors='replace')}")
        log = self.log_file.open("ab")
        proc = self._java("kafka.Kafka", str(props), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AlertlineError(f"kafka exited with {proc.returncode}; see {self.log_file}")
            if self.accepting() and self._metadata_ok():
                return
            time.sleep(0.3)
        raise AlertlineError(f"kafka did not start within {timeout}s; see {self.log_file}")

    def _metadata_ok(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
            return bool(md.brokers)
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def down(self, timeout: float = 30.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the broker (chaos tests)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return "stopped"
        return f"running pid={pid} bootstrap={self.bootstrap}" if self.accepting() else f"starting pid={pid}"
