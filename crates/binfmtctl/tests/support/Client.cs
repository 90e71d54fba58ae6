// The .NET client program for the real-interpreter tests (tests/clients.rs),
// compiled with mcs and run by Mono: the same output as client.c. argv[0]
// is Environment.GetCommandLineArgs()[0], the assembly as the runtime was
// given it; the rest are Main's arguments; self is the entry assembly's
// location; env the environment as the runtime lists it.
using System;
using System.IO;
using System.Text;

static class Client
{
    static void PutHex(Stream output, string label, byte[] bytes)
    {
        var line = new StringBuilder(label);
        foreach (var b in bytes)
            line.Append(b.ToString("x2"));
        line.Append('\n');
        var text = Encoding.ASCII.GetBytes(line.ToString());
        output.Write(text, 0, text.Length);
    }

    static int Main(string[] args)
    {
        var output = Console.OpenStandardOutput();
        var argv0 = Environment.GetCommandLineArgs()[0];
        var count = Encoding.ASCII.GetBytes("argc=" + (args.Length + 1) + "\n");
        output.Write(count, 0, count.Length);
        PutHex(output, "argv[0]=", Encoding.UTF8.GetBytes(argv0));
        for (var i = 0; i < args.Length; i++)
            PutHex(output, "argv[" + (i + 1) + "]=", Encoding.UTF8.GetBytes(args[i]));
        var self = System.Reflection.Assembly.GetEntryAssembly().Location;
        PutHex(output, "self=", Encoding.UTF8.GetBytes(self));
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
            PutHex(output, "env=", Encoding.UTF8.GetBytes(entry.Key + "=" + entry.Value));
        var input = new MemoryStream();
        Console.OpenStandardInput().CopyTo(input);
        PutHex(output, "stdin=", input.ToArray());
        output.Flush();
        var status = Environment.GetEnvironmentVariable("CLIENT_EXIT");
        return status == null ? 0 : int.Parse(status);
    }
}
