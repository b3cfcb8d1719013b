"""The VPC: two public subnets for the load balancer, two private ones for tasks and RDS."""

import ipaddress
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from cryptodudez_infra.tags import named

ZONES = 2


class Network(pulumi.ComponentResource):
    """VPC, subnets, one NAT gateway, S3 gateway endpoint and the security groups.

    Traffic: allowed CIDR -> load balancer (:443, or :80 without a certificate) ->
    webserver (:3000) and API (:8000); the webserver and daemon -> code location (:4000);
    webserver, daemon and code location -> Postgres (:5432). Nothing else is open inbound.
    """

    def __init__(self, name: str, *, prefix: str, region: str, zones: Sequence[str], cidr: str,
                 allowed_cidr: str, tags: dict[str, str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cryptodudez:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zones = zones[:ZONES]
        blocks = [str(b) for b in ipaddress.ip_network(cidr).subnets(new_prefix=20)][:2 * ZONES]

        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=cidr, enable_dns_hostnames=True,
                               enable_dns_support=True, tags=named(tags, prefix), opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id,
                                      tags=named(tags, prefix), opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=named(tags, f"{prefix}-public"), opts=child)
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        for i, zone in enumerate(zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{i}", vpc_id=self.vpc.id, cidr_block=blocks[i],
                availability_zone=zone, map_public_ip_on_launch=False,
                tags=named(tags, f"{prefix}-public-{zone}"), opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{i}", subnet_id=public.id,
                                          route_table_id=public_rt.id, opts=child)
            self.public_subnets.append(public)
        eip = aws.ec2.Eip(f"{name}-nat-ip", domain="vpc", tags=named(tags, f"{prefix}-nat"),
                          opts=child)
        nat = aws.ec2.NatGateway(f"{name}-nat", allocation_id=eip.id,
                                 subnet_id=self.public_subnets[0].id,
                                 tags=named(tags, f"{prefix}-nat"), opts=child)
        private_rt = aws.ec2.RouteTable(
            f"{name}-private-rt", vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
            tags=named(tags, f"{prefix}-private"), opts=child)
        for i, zone in enumerate(zones):
            private = aws.ec2.Subnet(
                f"{name}-private-{i}", vpc_id=self.vpc.id, cidr_block=blocks[ZONES + i],
                availability_zone=zone, tags=named(tags, f"{prefix}-private-{zone}"),
                opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}", subnet_id=private.id,
                                          route_table_id=private_rt.id, opts=child)
            self.private_subnets.append(private)
        aws.ec2.VpcEndpoint(f"{name}-s3-endpoint", vpc_id=self.vpc.id,
                            service_name=f"com.amazonaws.{region}.s3",
                            vpc_endpoint_type="Gateway", route_table_ids=[private_rt.id],
                            tags=named(tags, f"{prefix}-s3"), opts=child)

        self.alb_sg = self._group(name, "alb", prefix, tags, [
            {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": [allowed_cidr],
             "description": "HTTP from the allowed network"},
            {"protocol": "tcp", "from_port": 443, "to_port": 443,
             "cidr_blocks": [allowed_cidr], "description": "HTTPS from the allowed network"}])
        self.webserver_sg = self._group(name, "webserver", prefix, tags, [
            {"protocol": "tcp", "from_port": 3000, "to_port": 3000,
             "security_groups": [self.alb_sg.id], "description": "Dagster UI from the ALB"}])
        self.api_sg = self._group(name, "api", prefix, tags, [
            {"protocol": "tcp", "from_port": 8000, "to_port": 8000,
             "security_groups": [self.alb_sg.id], "description": "API from the ALB"}])
        self.daemon_sg = self._group(name, "daemon", prefix, tags, [])
        self.code_sg = self._group(name, "code-location", prefix, tags, [
            {"protocol": "tcp", "from_port": 4000, "to_port": 4000,
             "security_groups": [self.webserver_sg.id, self.daemon_sg.id],
             "description": "gRPC from the webserver and the daemon"}])
        self.db_sg = self._group(name, "db", prefix, tags, [
            {"protocol": "tcp", "from_port": 5432, "to_port": 5432,
             "security_groups": [self.webserver_sg.id, self.daemon_sg.id, self.code_sg.id],
             "description": "Postgres from Dagster"}])
        self.register_outputs({"vpc_id": self.vpc.id})

    def _group(self, name: str, role: str, prefix: str, tags: dict[str, str],
               ingress: list[aws.ec2.SecurityGroupIngressArgsDict]) -> aws.ec2.SecurityGroup:
        return aws.ec2.SecurityGroup(
            f"{name}-{role}-sg", vpc_id=self.vpc.id, description=f"{prefix} {role}",
            ingress=ingress,
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0,
                     "cidr_blocks": ["0.0.0.0/0"], "description": "outbound"}],
            tags=named(tags, f"{prefix}-{role}"), opts=pulumi.ResourceOptions(parent=self))
