"""The kernel FIB: netlink encoding (`netlink`), mcrd's routes in the kernel (`kernel`), the asyncio face (`worker`)."""
