// Column types shared by migrations: ids compare bytewise (case-sensitive) on both families.
import type { SqlFamily } from '../connect.ts';

export function columnTypes(family: SqlFamily) {
  return family === 'pg'
    ? { id: 'varchar(128) COLLATE "C"', key: 'varchar(255) COLLATE "C"', text: 'text', table: '' }
    : {
        id: 'varchar(128) CHARACTER SET ascii COLLATE ascii_bin',
        key: 'varchar(255) CHARACTER SET ascii COLLATE ascii_bin',
        text: 'mediumtext',
        table: ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
      };
}
