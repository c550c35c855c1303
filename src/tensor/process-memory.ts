// What the kernel counts for this process's memory (Linux /proc; null elsewhere): minor page faults,
// which a freed-and-remapped activation block costs on every touch of a fresh page (README, Speed),
// and resident memory now and at its peak.
import { readFileSync } from 'node:fs';

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** Minor page faults of this process so far: /proc/self/stat field 10 (minflt, proc(5)). */
export function minorFaults(): number | null {
  const stat = read('/proc/self/stat');
  if (stat === null) return null;
  // Field 2, the command name, is in parentheses and may hold spaces; field 3 follows the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[10 - 3]);
}

function statusBytes(key: 'VmRSS' | 'VmHWM'): number | null {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(read('/proc/self/status') ?? '');
  return m ? Number(m[1]) * 1024 : null;
}

/** Resident memory of this process now (VmRSS), in bytes. */
export function residentBytes(): number | null { return statusBytes('VmRSS'); }

/** The most resident memory this process has had (VmHWM), in bytes. */
export function peakResidentBytes(): number | null { return statusBytes('VmHWM'); }
