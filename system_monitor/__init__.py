"""What the machine is doing: disks, memory, resource graphs collected on a schedule, Berth's own logs."""
