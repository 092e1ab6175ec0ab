using SharpFuzz;

namespace Xmig.Fuzz;

// xmig's fuzz driver (issue 12). Under afl-fuzz: `Xmig.Fuzz fuzz TARGET` (persistent mode, input from afl).
// Without AFL: `replay TARGET PATH...` runs files (or every file under directories) through a target and prints each
// outcome; `seeds DIR` writes small saves of every stream kind; `targets` lists the targets.
internal static class FuzzProgram
{
    public static int Main(string[] args)
    {
        if (args.Length >= 2 && args[0] == "fuzz" && FuzzTargets.All.ContainsKey(args[1]))
        {
            var target = args[1];
            var buffer = new MemoryStream();
            Fuzzer.Run(stream =>
            {
                buffer.SetLength(0);
                stream.CopyTo(buffer);
                FuzzTargets.Run(target, buffer.ToArray());
            });
            return 0;
        }

        if (args.Length >= 3 && args[0] == "replay" && FuzzTargets.All.ContainsKey(args[1]))
        {
            var failures = 0;
            foreach (var file in args[2..].SelectMany<string, string>(p => Directory.Exists(p) ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories).Order() : [p]))
            {
                try
                {
                    Console.WriteLine($"{FuzzTargets.Run(args[1], File.ReadAllBytes(file)),-11} {file}");
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    failures++;
                    Console.WriteLine($"FINDING     {file}: {e.GetType().Name}: {e.Message}");
                    Console.Error.WriteLine(e);
                }
            }

            return failures == 0 ? 0 : 1;
        }

        if (args.Length == 2 && args[0] == "seeds")
        {
            Seeds.Write(args[1]);
            return 0;
        }

        if (args.Length == 1 && args[0] == "targets")
        {
            foreach (var name in FuzzTargets.All.Keys)
            {
                Console.WriteLine($"{name}\t{(FuzzTargets.HasModeOctet(name) ? "mode-octet" : "raw")}");
            }

            return 0;
        }

        Console.Error.WriteLine($"usage: Xmig.Fuzz fuzz|replay TARGET [PATH...] | seeds DIR | targets   (targets: {string.Join(' ', FuzzTargets.All.Keys)})");
        return 2;
    }
}
