"""Security group → network interfaces → public addresses, against moto in server mode."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto.server import ThreadedMotoServer

from alertline.clock import FixedClock
from services.enrich.domain import Selection
from services.enrich.ec2 import Ec2Config, Ec2Resolver, GroupRef, ResolveError, group_ref
from services.enrich.enrichers import Exposure
from services.enrich.guard import Guard
from services.enrich.probe import ProbeConfig, Prober
from tests.integration.enrich.helpers import NOW, evaluated


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _world(url: str) -> dict[str, str]:
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=url)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="open-ssh", Description="wide open", VpcId=vpc)["GroupId"]
    other = ec2.create_security_group(GroupName="other", Description="unrelated", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    ])  # fmt: skip
    inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2, SubnetId=subnet, SecurityGroupIds=[sg])
    ids = [i["InstanceId"] for i in inst["Instances"]]
    eni_of = {i["InstanceId"]: i["NetworkInterfaces"][0]["NetworkInterfaceId"] for i in inst["Instances"]}
    eip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=eip["AllocationId"], NetworkInterfaceId=eni_of[ids[0]])
    # a standalone interface (e.g. a load balancer's) in the same group, with its own public address
    lb = ec2.create_network_interface(SubnetId=subnet, Groups=[sg], Description="lb")["NetworkInterface"]
    eip2 = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=eip2["AllocationId"], NetworkInterfaceId=lb["NetworkInterfaceId"])
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet, SecurityGroupIds=[other])
    return {
        "sg": sg,
        "other": other,
        "public": eip["PublicIp"],
        "lb_public": eip2["PublicIp"],
        "instance": ids[0],
        "eni": eni_of[ids[0]],
        "lb": lb["NetworkInterfaceId"],
        "quiet": ids[1],
    }


def test_security_group_resolves_to_the_public_addresses_of_its_interfaces(moto_url: str) -> None:
    w = _world(moto_url)
    res = Ec2Resolver(Ec2Config(endpoint_url=moto_url)).resolve(GroupRef(w["sg"], "us-east-1", "123456789012"))
    by_addr = {h.address: dict(h.context) for h in res.hosts}
    assert by_addr[w["public"]] == {"security_group": w["sg"], "network_interface": w["eni"], "instance": w["instance"]}
    assert by_addr[w["lb_public"]]["network_interface"] == w["lb"]
    assert res.interfaces == 3, "two instances and the standalone interface use the group"
    assert set(by_addr) == {w["public"], w["lb_public"]}, "the instance without a public address is not a target"


def test_a_groups_interfaces_are_reused_within_the_cache_ttl_and_errors_are_not_cached(moto_url: str) -> None:
    w = _world(moto_url)
    ref = GroupRef(w["sg"], "us-east-1", "123456789012")
    cached = Ec2Resolver(Ec2Config(endpoint_url=moto_url, cache_ttl_s=60))
    fresh = Ec2Resolver(Ec2Config(endpoint_url=moto_url, cache_ttl_s=0))
    before = {h.address for h in cached.resolve(ref).hosts}
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_url)
    eip = ec2.allocate_address(Domain="vpc")
    quiet_eni = ec2.describe_instances(InstanceIds=[w["quiet"]])["Reservations"][0]["Instances"][0]
    ec2.associate_address(AllocationId=eip["AllocationId"],
                          NetworkInterfaceId=quiet_eni["NetworkInterfaces"][0]["NetworkInterfaceId"])  # fmt: skip
    assert {h.address for h in cached.resolve(ref).hosts} == before, "a burst about one group costs one call"
    assert eip["PublicIp"] in {h.address for h in fresh.resolve(ref).hosts}
    down = Ec2Resolver(Ec2Config(endpoint_url="http://127.0.0.1:9", connect_timeout_s=0.2, cache_ttl_s=60))
    for _ in range(2):  # each attempt really tries: a failure is not remembered
        with pytest.raises(ResolveError):
            down.resolve(ref)


def test_a_batch_of_alerts_about_one_group_builds_one_client_and_makes_one_call(moto_url: str) -> None:
    # The engine plans 16 alerts at once; each thread building its own client parsed the EC2
    # service model again at the same time (hundreds of MB of peak RSS for one cold batch).
    w = _world(moto_url)
    session = boto3.session.Session()
    built: list[str] = []
    calls: list[str] = []
    session.events.register("creating-client-class.ec2", lambda **kw: built.append("ec2"))
    session.events.register("before-call.ec2.DescribeNetworkInterfaces", lambda **kw: calls.append("describe"))
    resolver = Ec2Resolver(Ec2Config(endpoint_url=moto_url), session=session)
    ref = GroupRef(w["sg"], "us-east-1", "123456789012")
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: resolver.resolve(ref), range(16)))
    assert len(built) == 1 and len(calls) == 1
    assert all({h.address for h in r.hosts} == {w["public"], w["lb_public"]} for r in results)
    down = Ec2Resolver(Ec2Config(endpoint_url="http://127.0.0.1:9", connect_timeout_s=0.2))
    with ThreadPoolExecutor(max_workers=4) as pool:  # waiters share the failure; none is left hanging
        errors = [f.exception(timeout=30) for f in [pool.submit(down.resolve, ref) for _ in range(4)]]
    assert all(isinstance(e, ResolveError) for e in errors)


def test_exposure_alert_on_a_group_plans_one_probe_per_public_address_and_port(moto_url: str) -> None:
    w = _world(moto_url)
    arn = f"arn:aws:ec2:us-east-1:123456789012:security-group/{w['sg']}"
    ev = evaluated(11, resources=[{"type": "AwsEc2SecurityGroup", "id": arn, "name": None, "region": "us-east-1",
                                   "tags": {}, "addresses": []}])  # fmt: skip
    exp = Exposure(Prober(Guard(), ProbeConfig()), Selection(), Ec2Resolver(Ec2Config(endpoint_url=moto_url)),
                   clock=FixedClock(NOW))  # fmt: skip
    items = exp.plan(ev["alert"])
    assert sorted(t.subject for t in items) == sorted(
        f"{a}:{p}" for a in (w["public"], w["lb_public"]) for p in (22, 3389)
    )  # the sample alert names ports 22 and 3389


def test_unreachable_ec2_api_becomes_an_error_finding_not_a_lost_alert() -> None:
    ev = evaluated(12)
    exp = Exposure(Prober(Guard(), ProbeConfig()), Selection(),
                   Ec2Resolver(Ec2Config(endpoint_url="http://127.0.0.1:9", connect_timeout_s=0.5)),
                   clock=FixedClock(NOW))  # fmt: skip
    [note] = exp.plan(ev["alert"])
    assert note.verdict == "error" and "describe_network_interfaces for sg-0000000c" in note.summary  # type: ignore[union-attr]


def test_group_references_are_read_from_ids_and_arns() -> None:
    assert group_ref("AwsEc2SecurityGroup", "sg-0123456789abcdef0", "eu-west-1", "1") == GroupRef(
        "sg-0123456789abcdef0", "eu-west-1", "1"
    )
    assert group_ref("Other", "arn:aws:ec2:ap-northeast-1:210987654321:security-group/sg-00aa11bb", None, None) == (
        GroupRef("sg-00aa11bb", "ap-northeast-1", "210987654321")
    )
    assert group_ref("AwsEc2Instance", "i-0abc", None, None) is None
