"""The command line: one subcommand per benchmark module, and `table`."""
import argparse

from . import boot, bridge, builds, container, init, jail, net, netmem, oci, podman, podmanvm, podnet, python, table, vm, vmexec, volumes, warm, warmvol

MODULES = (container, boot, vm, init, warm, python, net, podnet, volumes, netmem, bridge, jail, oci, podman, podmanvm, builds, vmexec, warmvol)


def main(doc):
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    for module in MODULES:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.add_argument("--json", metavar="FILE",
                       help="the results file (default bench/results/NAME-UTCTIME.json)")
        p.set_defaults(run=module.run)
    p = sub.add_parser(table.NAME, help=table.HELP, description=table.__doc__)
    table.add_arguments(p)
    p.set_defaults(run=table.run)
    args = ap.parse_args()
    args.run(args)
