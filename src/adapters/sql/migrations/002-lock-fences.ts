// Fencing state for the lock library: durable epochs (SqlFenceAnchor) and the highest fence
// seen per resource (checkFence). Fences are DECIMAL(39,0): with the Redis TIME anchor they
// exceed 64 bits (epoch in ms << 40).
import type { SqlFamily } from '../connect.ts';
import { columnTypes } from './column-types.ts';

export const lockFences = {
  name: '002-lock-fences',
  statements(family: SqlFamily): string[] {
    const t = columnTypes(family);
    return [
      `CREATE TABLE lock_epochs (
        name ${t.id} NOT NULL PRIMARY KEY,
        epoch bigint NOT NULL,
        CONSTRAINT lock_epochs_positive CHECK (epoch > 0)
      )${t.table}`,
      `CREATE TABLE lock_fences (
        resource ${t.key} NOT NULL PRIMARY KEY,
        fence decimal(39,0) NOT NULL
      )${t.table}`,
    ];
  },
};
