//! A raw ZIP writer for hostile archives: every header field is the test's
//! to set, including the ones no honest writer would get wrong.

use std::io::Write;

/// One entry as it will be written.
#[derive(Clone)]
pub struct RawEntry {
    /// Name in the local header.
    pub name: Vec<u8>,
    /// Name in the central directory, when it should differ.
    pub central_name: Option<Vec<u8>>,
    /// The bytes stored after the local header (already compressed).
    pub data: Vec<u8>,
    pub method: u16,
    /// Compression method in the local header, when it should differ.
    pub local_method: Option<u16>,
    pub crc: u32,
    pub compressed_size: u32,
    pub size: u32,
    pub flags: u16,
    /// Unix mode (type and permission bits); 0 for none.
    pub mode: u32,
    /// Sizes and CRC in a data descriptor after the data (flag bit 3), with
    /// zeros in the local header, as streaming writers do.
    pub descriptor: bool,
    /// MS-DOS (date, time) in both headers.
    pub dos: (u16, u16),
    /// Extra fields, in both headers.
    pub extra: Vec<u8>,
}

impl RawEntry {
    /// A stored (uncompressed) file with honest sizes and CRC.
    pub fn stored(name: impl AsRef<[u8]>, data: &[u8]) -> Self {
        RawEntry {
            name: name.as_ref().to_vec(),
            central_name: None,
            data: data.to_vec(),
            method: 0,
            local_method: None,
            crc: crc32(data),
            compressed_size: data.len() as u32,
            size: data.len() as u32,
            flags: 0,
            mode: 0o100644,
            descriptor: false,
            dos: (0x5b21, 0), // 2025-09-01 00:00:00
            extra: Vec::new(),
        }
    }

    /// A deflated file with honest sizes and CRC.
    pub fn deflated(name: impl AsRef<[u8]>, data: &[u8]) -> Self {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        let packed = enc.finish().unwrap();
        RawEntry {
            compressed_size: packed.len() as u32,
            data: packed,
            method: 8,
            ..RawEntry::stored(name, data)
        }
    }

    /// A deflated file of `mib` MiB of zeros in about 1 KiB a MiB (a
    /// sync-flushed MiB repeated), its CRC left 0 (wrong): extracting it
    /// takes seconds, and fails only at its end.
    pub fn zeros(name: &str, mib: u32) -> Self {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        enc.flush().unwrap();
        let mut packed = enc.get_ref().repeat(mib as usize);
        // An empty final block (fixed Huffman: BFINAL, BTYPE 01, end of block).
        packed.extend_from_slice(&[0x03, 0x00]);
        RawEntry {
            compressed_size: packed.len() as u32,
            size: mib << 20,
            data: packed,
            method: 8,
            crc: 0,
            ..RawEntry::stored(name, b"")
        }
    }

    pub fn dir(name: &str) -> Self {
        RawEntry {
            mode: 0o040755,
            ..RawEntry::stored(name, b"")
        }
    }

    pub fn symlink(name: &str, target: &str) -> Self {
        RawEntry {
            mode: 0o120777,
            ..RawEntry::stored(name, target.as_bytes())
        }
    }

    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the MS-DOS date and time fields.
    pub fn dos_time(mut self, date: u16, time: u16) -> Self {
        self.dos = (date, time);
        self
    }

    /// Adds an extra field (to both headers).
    pub fn extra_field(mut self, id: u16, body: &[u8]) -> Self {
        self.extra.extend_from_slice(&id.to_le_bytes());
        self.extra
            .extend_from_slice(&(body.len() as u16).to_le_bytes());
        self.extra.extend_from_slice(body);
        self
    }

    /// Moves sizes and CRC to a data descriptor (sets flag bit 3).
    pub fn with_descriptor(mut self) -> Self {
        self.descriptor = true;
        self.flags |= 8;
        self
    }
}

/// Builds an archive: local entries, central records (possibly pointing at
/// the same local entry twice), end record, optional trailing bytes.
#[derive(Default)]
pub struct RawZip {
    body: Vec<u8>,
    central: Vec<u8>,
    count: u16,
}

impl RawZip {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the entry's local header and data and its central record;
    /// returns the local header's offset.
    pub fn add(&mut self, e: &RawEntry) -> u32 {
        let offset = self.body.len() as u32;
        let b = &mut self.body;
        let hidden = |v: u32| if e.descriptor { 0 } else { v };
        b.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        b.extend_from_slice(&20u16.to_le_bytes());
        b.extend_from_slice(&e.flags.to_le_bytes());
        b.extend_from_slice(&e.local_method.unwrap_or(e.method).to_le_bytes());
        b.extend_from_slice(&e.dos.1.to_le_bytes());
        b.extend_from_slice(&e.dos.0.to_le_bytes());
        b.extend_from_slice(&hidden(e.crc).to_le_bytes());
        b.extend_from_slice(&hidden(e.compressed_size).to_le_bytes());
        b.extend_from_slice(&hidden(e.size).to_le_bytes());
        b.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        b.extend_from_slice(&(e.extra.len() as u16).to_le_bytes());
        b.extend_from_slice(&e.name);
        b.extend_from_slice(&e.extra);
        b.extend_from_slice(&e.data);
        if e.descriptor {
            b.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
            b.extend_from_slice(&e.crc.to_le_bytes());
            b.extend_from_slice(&e.compressed_size.to_le_bytes());
            b.extend_from_slice(&e.size.to_le_bytes());
        }
        self.add_central(e, offset);
        offset
    }

    /// Adds a central record for `e` pointing at a local header at `offset`.
    pub fn add_central(&mut self, e: &RawEntry, offset: u32) {
        let name = e.central_name.as_ref().unwrap_or(&e.name);
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&(3u16 << 8 | 20).to_le_bytes()); // made by Unix
        c.extend_from_slice(&20u16.to_le_bytes());
        c.extend_from_slice(&e.flags.to_le_bytes());
        c.extend_from_slice(&e.method.to_le_bytes());
        c.extend_from_slice(&e.dos.1.to_le_bytes());
        c.extend_from_slice(&e.dos.0.to_le_bytes());
        c.extend_from_slice(&e.crc.to_le_bytes());
        c.extend_from_slice(&e.compressed_size.to_le_bytes());
        c.extend_from_slice(&e.size.to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&(e.extra.len() as u16).to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes()); // comment
        c.extend_from_slice(&0u16.to_le_bytes()); // disk
        c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        c.extend_from_slice(&(e.mode << 16).to_le_bytes());
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name);
        c.extend_from_slice(&e.extra);
        self.count += 1;
    }

    pub fn finish(self) -> Vec<u8> {
        self.finish_with_trailer(b"")
    }

    pub fn finish_with_trailer(mut self, trailer: &[u8]) -> Vec<u8> {
        let cd_offset = self.body.len() as u32;
        let cd_size = self.central.len() as u32;
        self.body.extend_from_slice(&self.central);
        let b = &mut self.body;
        b.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&self.count.to_le_bytes());
        b.extend_from_slice(&self.count.to_le_bytes());
        b.extend_from_slice(&cd_size.to_le_bytes());
        b.extend_from_slice(&cd_offset.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(trailer);
        self.body
    }
}

/// An archive of these entries, laid out honestly.
pub fn raw_zip(entries: &[RawEntry]) -> Vec<u8> {
    let mut z = RawZip::new();
    for e in entries {
        z.add(e);
    }
    z.finish()
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}
