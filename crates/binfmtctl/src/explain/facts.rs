//! The binary's facts as `explain` shows them.

use binfmt_dispatcher_core::probe::{self, Facts, Format};
use serde_json::{json, Value};

fn osabi_name(osabi: u8) -> &'static str {
    match osabi {
        0 => "System V",
        1 => "HP-UX",
        2 => "NetBSD",
        3 => "Linux",
        6 => "Solaris",
        9 => "FreeBSD",
        12 => "OpenBSD",
        97 => "ARM",
        255 => "standalone",
        _ => "other",
    }
}

fn kind_name(kind: u16) -> &'static str {
    match kind {
        1 => "relocatable",
        2 => "executable",
        3 => "shared object (PIE or library)",
        4 => "core",
        _ => "other",
    }
}

/// The facts as JSON and as lines of text.
pub fn describe(facts: &Facts<'_>) -> (Value, Vec<String>) {
    let bits = match facts.class {
        probe::ELFCLASS32 => 32,
        probe::ELFCLASS64 => 64,
        _ => 0,
    };
    match facts.format {
        Format::Elf => {}
        Format::Unknown => {
            return (
                json!({"format": "unknown"}),
                vec!["format: not recognised (not ELF, PE, Java class, JAR or Mach-O)".to_string()],
            );
        }
        Format::Pe => {
            let name = probe::pe_machine_name(facts.pe_machine);
            let json = json!({
                "format": "pe",
                "class": bits,
                "pe_machine": facts.pe_machine,
                "pe_machine_name": name,
                "dotnet": facts.dotnet,
            });
            let kind = match (bits, facts.dotnet) {
                (_, true) => ".NET assembly (CLR header present)".to_string(),
                (0, false) => "no optional header (an object file?)".to_string(),
                (bits, false) => format!("Windows program (Win{bits}, no CLR header)"),
            };
            let class = match bits {
                32 => "PE32",
                64 => "PE32+",
                _ => "PE",
            };
            let text = vec![
                format!("format: {class}, {kind}"),
                format!(
                    "PE machine: {} ({:#x})",
                    name.unwrap_or("unknown"),
                    facts.pe_machine
                ),
            ];
            return (json, text);
        }
        Format::JavaClass => {
            let json = json!({
                "format": "java",
                "java_major": facts.java_major,
            });
            let java = match facts.java_major {
                45..=48 => format!("Java 1.{}", facts.java_major - 44),
                m => format!("Java {}", m - 44),
            };
            let text = vec![format!(
                "format: Java class file, version {} ({java})",
                facts.java_major
            )];
            return (json, text);
        }
        Format::Jar => {
            let text = vec!["format: Java archive (JAR: a zip archive)".to_string()];
            return (json!({"format": "jar"}), text);
        }
        Format::MachO => {
            let json = json!({
                "format": "macho",
                "class": bits,
                "macho_cpu": facts.macho_cpu,
                "macho_arches": facts.macho_arches,
            });
            let what = if facts.macho_arches > 0 {
                format!(
                    "universal (fat), {} architectures, the first of CPU type {:#x}",
                    facts.macho_arches, facts.macho_cpu
                )
            } else {
                format!("{bits}-bit, CPU type {:#x}", facts.macho_cpu)
            };
            let text = vec![format!(
                "format: Mach-O (macOS), {what}; Linux cannot run it natively"
            )];
            return (json, text);
        }
    }
    let class = bits;
    let endian = match facts.endian {
        probe::ELFDATA2LSB => "little",
        probe::ELFDATA2MSB => "big",
        _ => "unknown",
    };
    let machine_name = probe::machine_name(facts.machine);
    let json = json!({
        "format": "elf",
        "class": class,
        "endian": endian,
        "machine": facts.machine,
        "machine_name": machine_name,
        "arch": probe::arch_of(facts).map(|a| a.name),
        "osabi": facts.osabi,
        "osabi_name": osabi_name(facts.osabi),
        "type": facts.kind,
        "type_name": kind_name(facts.kind),
        "flags": facts.flags,
        "interp": facts.interp.map(String::from_utf8_lossy),
    });
    let text = vec![
        format!(
            "format: ELF, {class}-bit, {endian}-endian, {} (type {})",
            kind_name(facts.kind),
            facts.kind
        ),
        format!(
            "machine: {} ({}){}",
            machine_name.unwrap_or("unknown"),
            facts.machine,
            probe::arch_of(facts)
                .map(|a| a.name)
                .map_or(String::new(), |a| format!(", QEMU target {a}"))
        ),
        format!(
            "OS ABI: {} ({}), flags: {:#x}",
            facts.osabi,
            osabi_name(facts.osabi),
            facts.flags
        ),
        format!(
            "PT_INTERP: {}",
            facts
                .interp
                .map_or("none (static)".into(), String::from_utf8_lossy)
        ),
    ];
    (json, text)
}
